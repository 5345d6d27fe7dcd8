"""Scoring placements: loads per batch, exact P3 per batch, incremental moves.

A placement ``pi`` changes only the loads (eq. 9, generalized): ``p[n, i, k]``, the
selected pairs of batch ``n`` whose expert sits on device ``k`` in layer ``i``, and
``u[n, i, k]``, the distinct tokens sent there. The score of ``pi`` is the mean
over batches of the certified P3 optimum (eqs. 19-21) of those loads, all batches
in one call of :func:`wdmoe_opt.batch.solve_p3` (the compiled kernel and the
certificate of ``p3/exact``) on data built straight from the loads (no instance
is rebuilt).
A move or swap of experts within layer ``i`` changes the loads of two devices of
that layer only; :class:`PlacementState` updates just those before re-solving P3.
"""

from __future__ import annotations

import numpy as np

from ..batch import P3Batch, solve_p3
from ..model import latency as lat
from ..model.instance import experts_per_device
from ..model.replicas import route_loads, split_route
from .problem import PlacementProblem

#: Relative duality gap of the P3 solves inside the search (the final solution is
#: re-solved by ``p3/exact`` at its own default tolerance).
SEARCH_TOL = 1e-7

#: A change must lower the objective by this much (relative) to count as improving
#: (above the P3 solves' own tolerance, so round-off cannot cycle).
MIN_IMPROVEMENT = 1e-6


class PlacementEvaluator:
    """Loads and exact P3 latency of placements on a problem's training batches."""

    def __init__(self, problem: PlacementProblem, tol: float = SEARCH_TOL):
        self.problem = problem
        self.instance = problem.instance
        self.tol = tol
        self.q = np.ascontiguousarray(problem.batch_masks())      # [N, I, Jb, E] bool
        self.pairs = self.q.sum(axis=2)                            # [N, I, E] int
        self.U = self.instance.n_devices
        self.compute_s = lat.compute_time_per_token_s(self.instance)
        self.n_solves = 0

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(N, I, Jb, E)``: batches, layers, tokens per batch, experts."""
        return self.q.shape  # type: ignore[return-value]

    def loads(self, placement: np.ndarray,
              replicas: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(u, p)``, each ``[N, I, U]`` int64, of every batch under ``placement`` (with
        ``replicas`` ``[I, E, R]``: routed by the split rule, ranked within each batch)."""
        if replicas is not None:
            return route_loads(split_route(replicas, self.q), self.U)
        N, I, Jb, E = self.shape
        U = self.U
        n, i, j, e = np.nonzero(self.q)
        k = placement[i, e]
        flat_p = (n * I + i) * U + k
        p = np.bincount(flat_p, minlength=N * I * U).reshape(N, I, U)
        sent = np.unique(flat_p * Jb + j)                          # distinct (n, i, k, j)
        u = np.bincount(sent // Jb, minlength=N * I * U).reshape(N, I, U)
        return u, p

    def device_loads(self, placement_row: np.ndarray, layer: int,
                     devices) -> tuple[np.ndarray, np.ndarray]:
        """``(u, p)``, each ``[N, len(devices)]``: loads of some devices in one layer."""
        q = self.q[:, layer]                                        # [N, Jb, E]
        u = np.empty((q.shape[0], len(devices)), dtype=np.int64)
        p = np.empty_like(u)
        for col, k in enumerate(devices):
            on = placement_row == k
            p[:, col] = self.pairs[:, layer, on].sum(axis=-1)
            u[:, col] = q[:, :, on].any(axis=-1).sum(axis=-1)
        return u, p

    def layer_loads(self, replicas_row: np.ndarray,
                    layer: int) -> tuple[np.ndarray, np.ndarray]:
        """``(u, p)``, each ``[N, U]``: one layer's loads with its copies ``[E, R]``."""
        u, p = route_loads(split_route(replicas_row[None], self.q[:, layer, None]), self.U)
        return u[:, 0], p[:, 0]

    def _p3_batch(self, u: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, P3Batch | None]:
        """The batches' P3 instances on the devices loaded in some batch (the others get
        no bandwidth): ``(those devices, the batch or None when nothing is loaded)``."""
        loaded = np.flatnonzero(u.any(axis=(0, 1)))
        if not loaded.size:
            return loaded, None
        n, inst = u.shape[0], self.instance
        signal = inst.received_power_w[:, :, loaded]
        s = inst.system
        return loaded, P3Batch(
            tokens=u[:, :, loaded], pairs=p[:, :, loaded],
            signal_w=np.broadcast_to(signal, (n,) + signal.shape),
            compute_s=np.broadcast_to(self.compute_s[loaded], (n, loaded.size)),
            token_bits=inst.model.token_bits, total_bandwidth_hz=s.total_bandwidth_hz,
            noise_psd_w_per_hz=s.noise_psd_w_per_hz,
            local=None if s.local is None else s.local_mask[loaded])

    def batch_latency(self, u: np.ndarray, p: np.ndarray) -> np.ndarray:
        """``[N]``: the optimal P3 latency (s) of each batch's loads."""
        self.n_solves += u.shape[0]
        _, batch = self._p3_batch(u, p)
        if batch is None:
            return np.zeros(u.shape[0])
        return solve_p3(batch, self.tol, workers=1).objective_s

    def batch_times(self, u: np.ndarray, p: np.ndarray) -> np.ndarray:
        """``[N, I, U]``: device times (s, eq. 10) at each batch's optimal bandwidth."""
        out = np.zeros(u.shape)
        loaded, batch = self._p3_batch(u, p)
        if batch is not None:
            out[:, :, loaded] = batch.device_time_s(solve_p3(batch, self.tol,
                                                             workers=1).bandwidth_hz)
        return out

    def score(self, placement: np.ndarray, replicas: np.ndarray | None = None) -> float:
        """The P5 objective: the mean over batches of the optimal batch latency (s)."""
        return float(self.batch_latency(*self.loads(placement, replicas)).mean())


class PlacementState:
    """A placement with its loads and batch latencies, changed by moves and swaps."""

    def __init__(self, evaluator: PlacementEvaluator, placement: np.ndarray):
        self.ev = evaluator
        self.placement = np.array(placement, dtype=np.int64)
        self.u, self.p = evaluator.loads(self.placement)
        self.latency = evaluator.batch_latency(self.u, self.p)
        self.counts = experts_per_device(self.placement, evaluator.U)
        self._times: np.ndarray | None = None

    @property
    def objective(self) -> float:
        return float(self.latency.mean())

    def try_change(self, layer: int, row: np.ndarray) -> tuple[float, tuple]:
        """Score layer ``layer`` re-placed as ``row`` (differing in two devices at most):
        ``(new objective, undo/commit token)``; the state is left unchanged."""
        old = self.placement[layer]
        devices = np.unique(np.r_[old[row != old], row[row != old]])
        du, dp = self.ev.device_loads(row, layer, devices)
        u = self.u.copy()
        p = self.p.copy()
        u[:, layer, devices] = du
        p[:, layer, devices] = dp
        lat = self.ev.batch_latency(u, p)
        return float(lat.mean()), (layer, row, u, p, lat)

    def try_relabel(self, a: int, b: int) -> tuple[float, tuple]:
        """Score exchanging devices ``a`` and ``b`` in every layer (what ``a`` hosts goes
        to ``b`` and back): the loads just swap columns. ``(new objective, token)``."""
        cols = np.array([b, a])
        u, p = self.u.copy(), self.p.copy()
        u[:, :, [a, b]] = self.u[:, :, cols]
        p[:, :, [a, b]] = self.p[:, :, cols]
        lat = self.ev.batch_latency(u, p)
        pl = self.placement.copy()
        pl[self.placement == a], pl[self.placement == b] = b, a
        return float(lat.mean()), (None, pl, u, p, lat)

    def try_placement(self, placement: np.ndarray) -> tuple[float, tuple]:
        """Score any placement (loads recomputed in full). ``(new objective, token)``."""
        u, p = self.ev.loads(placement)
        lat = self.ev.batch_latency(u, p)
        return float(lat.mean()), (None, placement, u, p, lat)

    def relabel_fits(self, a: int, b: int, capacity: np.ndarray) -> bool:
        """Whether exchanging devices ``a`` and ``b`` respects the capacities."""
        return bool((self.counts[:, a] <= capacity[:, b]).all()
                    and (self.counts[:, b] <= capacity[:, a]).all())

    def commit(self, token: tuple) -> None:
        """Apply a change scored by :meth:`try_change` or :meth:`try_relabel`."""
        layer, row, self.u, self.p, self.latency = token
        if layer is None:
            self.placement = row
            self.counts = experts_per_device(row, self.ev.U)
        else:
            np.subtract.at(self.counts[layer], self.placement[layer], 1)
            np.add.at(self.counts[layer], row, 1)
            self.placement[layer] = row
        self._times = None

    def bottlenecks(self, layer: int) -> np.ndarray:
        """Devices that are the slowest of ``layer`` in some batch (eq. 11's argmax) at
        each batch's optimal bandwidth."""
        if self._times is None:
            self._times = self.ev.batch_times(self.u, self.p)
        return np.unique(self._times[:, layer].argmax(axis=-1))


def best_improving(state, scored) -> tuple[int, tuple | None]:
    """``(candidates scored, token of the best one improving by MIN_IMPROVEMENT or None)``
    over an iterable of ``(objective, token)`` (``state.objective`` the current one)."""
    best, best_token, n = state.objective * (1 - MIN_IMPROVEMENT), None, 0
    for score, token in scored:
        n += 1
        if score < best:
            best, best_token = score, token
    return n, best_token
