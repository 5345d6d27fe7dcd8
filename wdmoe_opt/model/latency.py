"""The latency, WLR and energy model (SPEC §1; the paper's eqs. 2-12).

Everything is vectorized over layers x tokens x experts with numpy. Bandwidth
arguments broadcast: ``bandwidth_hz`` of shape ``[..., U]`` gives outputs of shape
``[..., I, U]``, so a solver can evaluate many allocations at once.
"""

from __future__ import annotations

import numpy as np

from .instance import Instance
from .replicas import route_loads, split_route
from .selection import Selection

LN2 = np.log(2.0)


def shannon_rate_bps(bandwidth_hz, signal_w, noise_psd_w_per_hz) -> np.ndarray:
    """Eqs. (2)-(3): ``R = B log2(1 + S / (N0 B))`` with ``R(0) = 0``.

    ``signal_w`` is the received power ``P g``. Computed as
    ``B log1p(S / (N0 B)) / ln 2`` for accuracy at large ``B``.
    """
    b = np.asarray(bandwidth_hz, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = b * np.log1p(signal_w / (noise_psd_w_per_hz * b)) / LN2
    return np.where(b > 0, r, 0.0)


def rate_and_slope(bandwidth_hz, signal_w, noise_psd_w_per_hz):
    """``R(B)`` of eqs. (2)-(3) and ``dR/dB = (ln(1 + x) - x / (1 + x)) / ln 2``,
    ``x = S / (N0 B)``, elementwise for ``B > 0`` (the gradients of the bandwidth
    steps)."""
    x = signal_w / (noise_psd_w_per_hz * bandwidth_hz)
    lg = np.log1p(x)
    return bandwidth_hz * lg / LN2, (lg - x / (1 + x)) / LN2


def link_rates_bps(instance: Instance, bandwidth_hz) -> tuple[np.ndarray, np.ndarray]:
    """Downlink (eq. 2) and uplink (eq. 3) rates, each ``[..., I, U]`` (read-only;
    under slow fading a broadcast view of one row)."""
    rates = _link_rates_bps(instance, bandwidth_hz)
    return _per_layer(instance, rates[..., 0, :, :]), _per_layer(instance, rates[..., 1, :, :])


def _link_rates_bps(instance: Instance, bandwidth_hz) -> np.ndarray:
    """Both links in one pass: ``[..., 2, R, U]``, downlink first (``R`` rows of
    :attr:`Instance.received_power_w`: one per layer only under fast fading)."""
    b = np.asarray(bandwidth_hz, dtype=np.float64)[..., None, None, :]
    return shannon_rate_bps(b, instance.received_power_w, instance.system.noise_psd_w_per_hz)


def _per_layer(instance: Instance, a: np.ndarray) -> np.ndarray:
    """``[..., R, U]`` broadcast to ``[..., I, U]`` (a view)."""
    return np.broadcast_to(a, a.shape[:-2] + (instance.n_layers, a.shape[-1]))


def comm_time_per_token_s(instance: Instance, bandwidth_hz) -> np.ndarray:
    """Eq. (6): ``c = L_comm / R_down + L_comm / R_up`` per token, ``[..., I, U]``
    (``inf`` where the device has no bandwidth, 0 on a ``local`` device; read-only,
    as :func:`link_rates_bps`)."""
    with np.errstate(divide="ignore"):
        per_link = instance.model.token_bits / _link_rates_bps(instance, bandwidth_hz)
    c = per_link[..., 0, :, :] + per_link[..., 1, :, :]
    if instance.system.local is not None:
        c = np.where(instance.system.local, 0.0, c)
    return _per_layer(instance, c)


def compute_time_per_token_s(instance: Instance) -> np.ndarray:
    """Eq. (7): ``a_k = L_comp / C_k`` per token and expert, ``[U]``."""
    return instance.model.token_flops / instance.system.compute_flops


def device_loads(instance: Instance, selection: Selection) -> tuple[np.ndarray, np.ndarray]:
    """Loads ``(u, p)``, each ``[I, U]`` int64 (eq. 9, generalized to shared placement).

    ``p[i, k]``: selected (token, expert) pairs whose expert lives on device ``k``;
    ``u[i, k]``: distinct tokens sent to ``k`` (a token sent to two experts on one
    device crosses the link once). Under the identity placement ``u == p``. With
    replicated experts (``instance.replicas``) each pair counts on the copy that
    serves it (:func:`routed_devices`). Memoized on the (immutable) selection per
    placement (and, when replicated, per instance).
    """
    key = ("loads", instance.n_devices, instance.placement.tobytes())
    if instance.replicas is not None:
        key += (instance.content_hash,)
    return selection.memo(key, lambda: _device_loads(instance, selection.mask))


def routed_devices(instance: Instance, q: np.ndarray) -> np.ndarray:
    """``[I, J, E]``: the copy serving each selected pair of ``q`` (-1 elsewhere), by the
    instance's ``route`` where set, else the split rule
    (:func:`wdmoe_opt.model.replicas.split_route`); replicated instances only."""
    route = split_route(instance.replicas, q)
    if instance.route is not None:
        route = np.where(q & (instance.route >= 0), instance.route, route)
    return route


def _device_loads(instance: Instance, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    I, J, E = q.shape
    U = instance.n_devices
    if instance.replicas is not None:
        u, p = route_loads(routed_devices(instance, q), U)
        u.setflags(write=False)
        p.setflags(write=False)
        return u, p
    if instance.identity_placement:
        p = np.count_nonzero(q, axis=1).astype(np.int64)
        p.setflags(write=False)
        return p, p
    i_idx, j_idx, e_idx = np.nonzero(q)
    k_idx = instance.placement[i_idx, e_idx]
    p = np.bincount(i_idx * U + k_idx, minlength=I * U).reshape(I, U)
    sent = np.zeros((I, J, U), dtype=bool)               # token j sent to device k
    sent[i_idx, j_idx, k_idx] = True
    u = np.count_nonzero(sent, axis=1).astype(np.int64)
    u.setflags(write=False)
    p.setflags(write=False)
    return u, p


def mask_loads(masks: np.ndarray, onehot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Loads ``(u, p)`` (eq. 9) of candidate masks ``[..., J, E]``, batched: ``onehot``
    ``[..., E, U]`` says which device hosts each expert (broadcast against the masks'
    leading axes); ``u`` distinct tokens and ``p`` pairs per device, ``[..., U]``.

    The per-(token, device) pair counts are a ``float32`` matrix product (BLAS; exact:
    0/1 products summed over at most ``E < 2^24`` experts), summed in ``int64``."""
    pairs = np.matmul(masks.astype(np.float32), onehot.astype(np.float32))
    return np.count_nonzero(pairs, axis=-2), pairs.sum(axis=-2, dtype=np.int64)


def device_time_from_loads(u, p, comm_s, comp_s) -> np.ndarray:
    """Eq. (10), the one kernel every evaluation uses: ``t = u c + p a`` from loads
    ``u, p``, per-token times ``c`` (eq. 6, ``inf`` without bandwidth) and ``a`` (eq. 7),
    0 where nothing is sent; all arguments broadcast."""
    with np.errstate(invalid="ignore"):
        return np.where(u > 0, u * comm_s, 0.0) + p * comp_s


def device_time_s(instance: Instance, selection: Selection, bandwidth_hz,
                  loads: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Eqs. (8)-(10): ``t[i, k] = u c_k(B_k) + p a_k`` (0 with no load), ``[..., I, U]``."""
    u, p = device_loads(instance, selection) if loads is None else loads
    return device_time_from_loads(u, p, comm_time_per_token_s(instance, bandwidth_hz),
                                  compute_time_per_token_s(instance))


def layer_latency_s(instance: Instance, selection: Selection, bandwidth_hz) -> np.ndarray:
    """Eq. (11): attention waiting latency ``t^i = max_k t[i, k]``, ``[..., I]``."""
    return device_time_s(instance, selection, bandwidth_hz).max(axis=-1)


def total_latency_s(instance: Instance, selection: Selection, bandwidth_hz) -> np.ndarray:
    """The P1/P3 objective ``T = sum_i t^i`` (eq. 13/19)."""
    return layer_latency_s(instance, selection, bandwidth_hz).sum(axis=-1)


def selected_weight(instance: Instance, selection: Selection) -> np.ndarray:
    """``[I, U]``: ``sum_j sum_{e on k} q w``, the numerator of the WLR (eq. 12)."""
    return selection.memo(("weight", instance.content_hash),
                          lambda: _selected_weight(instance, selection.mask))


def _selected_weight(instance: Instance, q: np.ndarray) -> np.ndarray:
    I, _, E = q.shape
    U = instance.n_devices
    if instance.replicas is not None:      # each pair's weight on its routed copy
        route = routed_devices(instance, q)
        i, _, _ = np.nonzero(q)
        return np.bincount(i * U + route[q], weights=instance.gating_weights[q],
                           minlength=I * U).reshape(I, U)
    per_expert = np.einsum("ije,ije->ie", q, instance.gating_weights)  # [I, E]
    if instance.identity_placement:
        return per_expert
    rows = np.repeat(np.arange(I) * U, E) + instance.placement.ravel()
    return np.bincount(rows, weights=per_expert.ravel(), minlength=I * U).reshape(I, U)


def wlr(instance: Instance, selection: Selection, bandwidth_hz) -> np.ndarray:
    """Eq. (12): weight-to-latency ratio ``[I, U]``; 0 for a device with no load."""
    return wlr_from_times(selected_weight(instance, selection),
                          device_time_s(instance, selection, bandwidth_hz))


def wlr_from_times(weight: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Eq. (12) from the numerators ``weight`` and the device times ``t``."""
    return np.divide(weight, t, out=np.zeros(np.broadcast_shapes(weight.shape, t.shape)),
                     where=t > 0)


def retained_weight(instance: Instance, selection: Selection) -> float:
    """Accuracy proxy: ``sum q w / sum_{Top-K} w`` over the batch (1.0 for Top-K)."""
    return float(selected_weight(instance, selection).sum()) / instance.topk_weight_total


def expert_invocations(selection: Selection) -> int:
    """``sum q``: selected (token, expert) pairs in the batch (memoized on the selection)."""
    return selection.memo("invocations", lambda: int(np.count_nonzero(selection.mask)))


def transmit_energy_per_token_j(instance: Instance, bandwidth_hz) -> np.ndarray:
    """``[..., I, U]`` energy to send one token to device ``k`` and back (SPEC §6):
    ``P_bs L_comm / R_down + P_k L_comm / R_up``; 0 on a ``local`` device, ``inf``
    on a linked device without bandwidth."""
    rates = _link_rates_bps(instance, bandwidth_hz)
    s = instance.system
    with np.errstate(divide="ignore"):
        e = instance.model.token_bits * (s.bs_power_w / rates[..., 0, :, :]
                                         + s.tx_power_w / rates[..., 1, :, :])
    if s.local is not None:
        e = np.where(s.local, 0.0, e)
    return _per_layer(instance, e)


def compute_energy_per_token_j(instance: Instance) -> np.ndarray:
    """``[U]`` compute energy of one (token, expert) pair, ``kappa_k L_comp``
    (zero without ``compute_j_per_flop``)."""
    kappa = instance.system.compute_j_per_flop
    if kappa is None:
        return np.zeros(instance.n_devices)
    return kappa * instance.model.token_flops


def energy_from_loads_j(instance: Instance, u: np.ndarray, p: np.ndarray,
                        bandwidth_hz) -> np.ndarray:
    """``[..., I, U]`` energy of loads ``(u, p)``: ``u`` times the per-token transmit
    energy plus ``p`` times the compute energy (0 where nothing is sent)."""
    per_token = transmit_energy_per_token_j(instance, bandwidth_hz)
    with np.errstate(invalid="ignore"):
        return (np.where(u > 0, u * per_token, 0.0)
                + p * compute_energy_per_token_j(instance))


def transmit_energy_j(instance: Instance, selection: Selection, bandwidth_hz) -> np.ndarray:
    """``[I, U]`` transmit energy: per distinct token, ``P_bs L / R_down + P_k L / R_up``."""
    u, _ = device_loads(instance, selection)
    return energy_from_loads_j(instance, u, np.zeros_like(u), bandwidth_hz)


def compute_energy_j(instance: Instance, selection: Selection) -> np.ndarray:
    """``[I, U]`` device compute energy ``p L_comp kappa_k``."""
    _, p = device_loads(instance, selection)
    return p * compute_energy_per_token_j(instance)


def layer_energy_j(instance: Instance, selection: Selection, bandwidth_hz) -> np.ndarray:
    """``[I]`` energy of each layer: transmit (both directions) plus device compute."""
    u, p = device_loads(instance, selection)
    return energy_from_loads_j(instance, u, p, bandwidth_hz).sum(axis=-1)


def energy_j(instance: Instance, selection: Selection, bandwidth_hz) -> float:
    """Total energy of the batch (SPEC §6): transmit (both directions) plus compute."""
    return float(layer_energy_j(instance, selection, bandwidth_hz).sum())


def uniform_bandwidth_hz(instance: Instance) -> np.ndarray:
    """The paper's baseline split: ``B_k = B / U``."""
    U = instance.n_devices
    return np.full(U, instance.system.total_bandwidth_hz / U)
