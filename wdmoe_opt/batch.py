"""Batch solving for simulators: many P3 (eqs. 19-21) and P2 selections in one call.

A simulator calls the toolkit thousands of times (every batch, every channel draw,
every mobility step) on instances that share a shape. Here the data of ``N`` such
instances are arrays with a leading batch axis, the answers are arrays too, and the
P3 solves run in the compiled kernel of ``p3/exact`` (``bandwidth/_p3kernel.c``)
without a Python object per solve: one kernel call per thread solves a contiguous
range of the batch with the GIL released.

Example::

    import numpy as np
    from wdmoe_opt import Selection, batch
    from wdmoe_opt.generate.presets import generate

    inst = generate("wdmoe-sim", seed=0, tokens=512)
    sel = Selection.topk(inst)
    rng = np.random.default_rng(0)
    fading = rng.exponential(size=(1000, 2, inst.n_devices))      # Rayleigh power
    p3 = batch.P3Batch.from_channels(inst, sel, inst.system.gain_down * fading[:, 0],
                                     inst.system.gain_up * fading[:, 1])
    res = batch.solve_p3(p3)            # res.bandwidth_hz [1000, 8], res.objective_s ...

The result is certified exactly as ``p3/exact``'s: the same kernel, the same
Lagrangian-dual lower bound, the same status rule (``optimal`` when the gap
recomputed in seconds is at most ``tol``; a bound above the objective beyond
round-off is ``error``). ``tests/test_batch.py`` checks it equals ``N`` per-call
solves, fast fading, idle and ``local`` devices included (a local device, SPEC §6,
gets 0 Hz and its compute time is a floor on each layer, as in
:mod:`~.bandwidth.structure`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .bandwidth.certificate import compiled_kernel
from .bandwidth.common import _BOUND_ROUNDOFF
from .bandwidth.exact import ExactOptions
from .errors import InputError
from .model import Instance, Selection
from .model import latency as lat
from .model.instance import topk_mask
from .problems import SelectionProblem
from .selection.alg1 import Alg1Options, algorithm1
from .selection.common import LayerTimes
from .solution import Status

#: ``_p3kernel.solve_batch``'s status codes.
_STATUS = np.array([s.value for s in (Status.OPTIMAL, Status.FEASIBLE, Status.TIME_LIMIT,
                                      Status.ERROR)])


@dataclass(frozen=True, eq=False)
class P3Batch:
    """``N`` P3 instances sharing a shape ``[I, U]`` and the model/system constants.

    Attributes
    ----------
    tokens : int array [N, I, U]
        ``u``: distinct tokens each device receives per layer (eq. 9).
    pairs : int array [N, I, U]
        ``p``: (token, expert) pairs each device computes per layer.
    signal_w : array [N, 2, R, U]
        Received powers ``P g`` (eqs. 2-3), downlink then uplink; ``R = I`` under
        fast fading, else 1.
    compute_s : array [N, U]
        ``a_k``: compute time per token and expert (eq. 7).
    token_bits, total_bandwidth_hz, noise_psd_w_per_hz : float
        Shared by the batch.
    local : bool array [U], optional
        Devices without a wireless link (SPEC §6), shared by the batch: no
        communication time, 0 Hz.
    """

    tokens: np.ndarray
    pairs: np.ndarray
    signal_w: np.ndarray
    compute_s: np.ndarray
    token_bits: float
    total_bandwidth_hz: float
    noise_psd_w_per_hz: float
    local: np.ndarray | None = None

    def __post_init__(self):
        n, i, u = self.tokens.shape
        if self.local is not None and np.shape(self.local) != (u,):
            raise InputError("local", f"must have shape [{u}]", np.shape(self.local))
        for name, shape in (("pairs", (n, i, u)), ("compute_s", (n, u))):
            if getattr(self, name).shape != shape:
                raise InputError(name, f"must have shape {list(shape)}", getattr(self, name).shape)
        s = self.signal_w
        if s.ndim != 4 or s.shape[0] != n or s.shape[1] != 2 or s.shape[2] not in (1, i) \
                or s.shape[3] != u:
            raise InputError("signal_w", f"must have shape [{n}][2][1 or {i}][{u}]", s.shape)
        if not (np.isfinite(s).all() and (s > 0).all()):
            raise InputError("signal_w", "must hold finite positive powers")
        if (np.asarray(self.tokens) < 0).any() or (np.asarray(self.pairs) < 0).any():
            raise InputError("tokens", "loads must be non-negative counts")
        if not (np.isfinite(self.compute_s).all() and (self.compute_s > 0).all()):
            raise InputError("compute_s", "must hold finite positive times per token")

    @property
    def local_mask(self) -> np.ndarray:
        """``[U]`` bool: devices without a link (all false without ``local``)."""
        if self.local is None:
            return np.zeros(self.tokens.shape[2], dtype=bool)
        return np.asarray(self.local, dtype=bool)

    @property
    def size(self) -> int:
        return int(self.tokens.shape[0])

    @classmethod
    def from_instances(cls, instances: Sequence[Instance],
                       selections: Sequence[Selection]) -> P3Batch:
        """The batch of ``(instance, selection)`` pairs (one shape, one set of constants)."""
        if len(instances) != len(selections) or not instances:
            raise InputError("selections", "must give one selection per instance (N >= 1)",
                             (len(instances), len(selections)))
        first = instances[0]
        key = _constants(first)
        for n, inst in enumerate(instances):
            if _constants(inst) != key or inst.system.fast_fading != first.system.fast_fading:
                raise InputError(f"instances[{n}]", "must share the first instance's layers, "
                                 "devices, local devices, token size, bandwidth, noise and "
                                 "fading kind",
                                 inst.name)
        loads = [lat.device_loads(inst, sel)
                 for inst, sel in zip(instances, selections, strict=True)]
        return cls(tokens=np.stack([u for u, _ in loads]),
                   pairs=np.stack([p for _, p in loads]),
                   signal_w=np.stack([inst.received_power_w for inst in instances]),
                   compute_s=np.stack([lat.compute_time_per_token_s(i) for i in instances]),
                   **_shared(first))

    @classmethod
    def from_channels(cls, instance: Instance, selection: Selection, gain_down,
                      gain_up) -> P3Batch:
        """One instance and selection under ``N`` channel realizations.

        ``gain_down``, ``gain_up``: ``[N, U]`` (slow fading) or ``[N, I, U]`` (one
        gain per layer), positive.
        """
        u, p = lat.device_loads(instance, selection)
        n = np.shape(gain_down)[0] if np.ndim(gain_down) else 0
        shape = (n,) + u.shape
        return cls.from_loads(instance, np.broadcast_to(u, shape), np.broadcast_to(p, shape),
                              gain_down, gain_up)

    @classmethod
    def from_loads(cls, instance: Instance, tokens, pairs, gain_down, gain_up) -> P3Batch:
        """``N`` load pairs ``(u, p)`` (each ``[N, I, U]``, e.g. from :func:`loads`) on
        ``instance``'s model and devices under ``N`` channels (``[N, U]`` or ``[N, I, U]``)."""
        gd = np.asarray(gain_down, dtype=np.float64)
        gu = np.asarray(gain_up, dtype=np.float64)
        I, U = instance.n_layers, instance.n_devices
        if gd.shape != gu.shape or gd.ndim not in (2, 3) or gd.shape[-1] != U or \
                (gd.ndim == 3 and gd.shape[1] != I):
            raise InputError("gain_down", f"must have shape [N][{U}] or [N][{I}][{U}], "
                             "the same as gain_up", (gd.shape, gu.shape))
        if gd.ndim == 2:
            gd, gu = gd[:, None, :], gu[:, None, :]
        s = instance.system
        signal = np.stack([s.bs_power_w * gd, s.tx_power_w * gu], axis=1)
        n = gd.shape[0]
        a = lat.compute_time_per_token_s(instance)
        return cls(tokens=np.asarray(tokens), pairs=np.asarray(pairs), signal_w=signal,
                   compute_s=np.broadcast_to(a, (n, U)), **_shared(instance))

    def device_time_s(self, bandwidth_hz) -> np.ndarray:
        """Eq. (10), ``t[n, i, k] = u c_k(B_k) + p a_k`` (0 with no load), ``[N, I, U]``."""
        b = np.asarray(bandwidth_hz, dtype=np.float64)[:, None, None, :]
        with np.errstate(divide="ignore"):
            per_link = self.token_bits / lat.shannon_rate_bps(b, self.signal_w,
                                                              self.noise_psd_w_per_hz)
        comm = np.where(self.local_mask, 0.0, per_link[:, 0] + per_link[:, 1])
        return lat.device_time_from_loads(self.tokens, self.pairs, comm,
                                          self.compute_s[:, None, :])

    def transmit_energy_j(self, bandwidth_hz, bs_power_w: float, tx_power_w) -> np.ndarray:
        """Transmit energy ``[N]`` at ``bandwidth_hz`` (``[N, U]``): per distinct token,
        ``P_bs L / R_down + P_k L / R_up`` (as :func:`~wdmoe_opt.model.latency.transmit_energy_j`;
        the powers must be those that gave ``signal_w``)."""
        b = np.asarray(bandwidth_hz, dtype=np.float64)[:, None, None, :]
        rate = lat.shannon_rate_bps(b, self.signal_w, self.noise_psd_w_per_hz)
        with np.errstate(divide="ignore", invalid="ignore"):
            per_token = self.token_bits * (bs_power_w / rate[:, 0] +
                                           np.asarray(tx_power_w) / rate[:, 1])
            per_token = np.where(self.local_mask, 0.0, per_token)
            energy = np.where(self.tokens > 0, self.tokens * per_token, 0.0)
        return energy.sum(axis=(1, 2))

    def objective_s(self, bandwidth_hz) -> np.ndarray:
        """The P3 objective (eq. 19) of every instance, ``[N]``."""
        return self.device_time_s(bandwidth_hz).max(axis=-1).sum(axis=-1)


def _constants(inst: Instance) -> tuple:
    s = inst.system
    return (inst.n_layers, inst.n_devices, inst.model.token_bits, s.total_bandwidth_hz,
            s.noise_psd_w_per_hz, s.local_mask.tobytes())


def _shared(inst: Instance) -> dict:
    s = inst.system
    return {"token_bits": float(inst.model.token_bits),
            "total_bandwidth_hz": float(s.total_bandwidth_hz),
            "noise_psd_w_per_hz": float(s.noise_psd_w_per_hz),
            "local": None if s.local is None else s.local_mask.copy()}


@dataclass(frozen=True, eq=False)
class P3BatchResult:
    """Arrays out of :func:`solve_p3`, one row per instance.

    ``bandwidth_hz [N, U]``, ``objective_s [N]``, ``lower_bound_s [N]`` (NaN where
    there is none), ``status [N]`` (:class:`~wdmoe_opt.solution.Status` values as
    strings), ``iterations [N]``.
    """

    bandwidth_hz: np.ndarray
    objective_s: np.ndarray
    lower_bound_s: np.ndarray
    status: np.ndarray
    iterations: np.ndarray

    @property
    def gap(self) -> np.ndarray:
        """Relative gap ``(T - lb) / T`` (0 where both are 0, NaN without a bound)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = (self.objective_s - self.lower_bound_s) / np.abs(self.objective_s)
        return np.where(self.objective_s == self.lower_bound_s, 0.0, gap)


def solve_p3(batch: P3Batch, tol: float = 1e-9, max_iter: int = 200,
             time_limit: float = 60.0, workers: int | None = None) -> P3BatchResult:
    """Solve every P3 instance of ``batch`` exactly (``p3/exact``'s kernel and certificate).

    One compiled call per thread (``_p3kernel.solve_batch``) takes each instance of
    its range from the physical arrays to the certified answer without the GIL:
    normalized as :class:`~.bandwidth.structure.P3Data`, solved by the interior point
    with its Lagrangian-dual bound, and answered in seconds by
    :func:`~.bandwidth.common.finish`'s rules (the objective recomputed at the
    allocation in Hz; a bound above it beyond ``_BOUND_ROUNDOFF`` is ``error``).

    Parameters
    ----------
    batch : P3Batch
    tol, max_iter, time_limit : as ``p3/exact`` (``time_limit`` per instance)
    workers : int, optional
        Threads, each solving a contiguous range (default: the CPUs this process
        may use, at most one per 64 instances).
    """
    ExactOptions(tol=tol, max_iter=max_iter, time_limit=time_limit).validate("batch.solve_p3")
    kernel = compiled_kernel()
    n, _, U = batch.tokens.shape
    if workers is None:
        workers = min(len(os.sched_getaffinity(0)), max(1, n // 64))
    if workers < 1:
        raise InputError("workers", "must be a positive integer", workers)
    arrays = (_rows(batch.tokens), _rows(batch.pairs), _rows(batch.compute_s),
              np.ascontiguousarray(batch.signal_w, dtype=np.float64))
    hz = np.empty((n, U))
    out = np.empty((4, n))               # objective, bound, status, iterations
    local = None if batch.local is None else batch.local_mask.astype(np.float64)
    edges = np.linspace(0, n, min(workers, max(n, 1)) + 1).astype(int)

    def run(lo: int, hi: int) -> None:
        kernel.solve_batch(*arrays, hz, out, batch.token_bits, batch.total_bandwidth_hz,
                           batch.noise_psd_w_per_hz, tol, max_iter, time_limit,
                           _BOUND_ROUNDOFF, int(lo), int(hi), local)

    if len(edges) <= 2:
        run(0, n)
    else:
        with ThreadPoolExecutor(len(edges) - 1) as pool:
            list(pool.map(run, edges[:-1], edges[1:]))
    return P3BatchResult(bandwidth_hz=hz, objective_s=out[0], lower_bound_s=out[1],
                         status=_STATUS[out[2].astype(int)], iterations=out[3].astype(int))


def _rows(a) -> np.ndarray:
    """``a`` as contiguous float64, its batch axis cut to 1 where it is a broadcast
    (stride 0: the same loads or compute times for every instance)."""
    a = np.asarray(a)
    return np.ascontiguousarray(a[:1] if a.shape[0] and a.strides[0] == 0 else a,
                                dtype=np.float64)


def solve_p3_robust(batch: P3Batch, sigma_db: float, scenarios: int = 32, seed=0,
                    tol: float = 1e-9, max_iter: int = 200, time_limit: float = 60.0,
                    workers: int | None = None) -> P3BatchResult:
    """``p3/robust``'s mean (SAA, ``risk = 0``) for every instance of ``batch``.

    The gains of ``batch`` are the base station's estimates; scenario ``s`` of
    instance ``n`` multiplies them by log-normal factors of ``sigma_db``
    (:func:`~wdmoe_opt.bandwidth.robust.lognormal_factors`, drawn ``[N, S, 2, R, U]``
    from ``seed``, so ``N = 1`` draws what ``p3/robust`` draws). Each instance becomes
    P3 with ``S I`` layers, solved and certified by :func:`solve_p3`; the returned
    ``objective_s`` and ``lower_bound_s`` are the mean latency over the scenarios and
    its certified bound. (CVaR is not batched: ``p3/robust`` with ``risk > 0``.)
    """
    from .bandwidth.robust import lognormal_factors

    n, I, U = batch.tokens.shape
    R = batch.signal_w.shape[2]
    f = lognormal_factors((n, scenarios, 2, R, U), sigma_db, seed)
    signal = np.broadcast_to(batch.signal_w[:, None] * f, (n, scenarios, 2, I, U))
    signal = signal.transpose(0, 2, 1, 3, 4).reshape(n, 2, scenarios * I, U)
    tiled = P3Batch(tokens=np.tile(batch.tokens, (1, scenarios, 1)),
                    pairs=np.tile(batch.pairs, (1, scenarios, 1)), signal_w=signal,
                    compute_s=batch.compute_s, token_bits=batch.token_bits,
                    total_bandwidth_hz=batch.total_bandwidth_hz,
                    noise_psd_w_per_hz=batch.noise_psd_w_per_hz, local=batch.local)
    res = solve_p3(tiled, tol, max_iter, time_limit, workers)
    return P3BatchResult(bandwidth_hz=res.bandwidth_hz, objective_s=res.objective_s / scenarios,
                         lower_bound_s=res.lower_bound_s / scenarios, status=res.status,
                         iterations=res.iterations)


# ---------------------------------------------------------------- selections (P2)

def topk_masks(gating_weights, k: int) -> np.ndarray:
    """Every token's router Top-K (ties to the lower id) for ``[N, I, J, E]`` weights."""
    return topk_mask(np.asarray(gating_weights, dtype=np.float64), k)


def loads(instance: Instance, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(u, p)`` of eq. (9) for selection masks ``[N, I, J, E]`` on ``instance``'s
    placement, each ``[N, I, U]`` (:func:`~wdmoe_opt.model.latency.mask_loads`)."""
    onehot = instance.placement[:, :, None] == np.arange(instance.n_devices)   # [I, E, U]
    return lat.mask_loads(np.asarray(masks, dtype=bool), onehot)


def alg1_masks(instances: Sequence[Instance], bandwidth_hz=None,
               options: Alg1Options | None = None) -> np.ndarray:
    """Algorithm 1 (``p2/alg1``) on every instance at its bandwidth (uniform if None;
    else ``[U]`` for all or ``[N, U]``): masks ``[N, I, J, E]``."""
    options = options or Alg1Options()
    options.validate("alg1_masks")
    bw = None if bandwidth_hz is None else np.asarray(bandwidth_hz, dtype=np.float64)
    out = []
    for n, inst in enumerate(instances):
        b = None if bw is None else (bw if bw.ndim == 1 else bw[n])
        sel, _ = algorithm1(LayerTimes(SelectionProblem(inst, b)), options)
        out.append(sel.mask())
    return np.stack(out)
