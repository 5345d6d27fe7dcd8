"""A small reference evaluator of the paper's model (eqs 2-12) and brute-force P2/P1.

Written from SPEC §1-§3 independently of :mod:`wdmoe_opt`: nothing here imports it.
An instance is read through its plain data fields only (``model.token_bits``,
``model.token_flops``, ``model.top_k``, the ``system`` arrays, ``gating_weights``,
``placement``), and every formula is written out again, with plain loops where
that is clearer: slow, for tiny instances, on purpose.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


# -- the model -----------------------------------------------------------------------------
def _link_constants(instance) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """``(L_comm, P g_down / N0, P_k g_up / N0, a)``: the token's bits (eq 4), the received
    SNR per hertz of each link [I, U] (gains [U], or [I, U] under fast fading) and the
    computation time per token ``a_k = L_comp / C_k`` [U] (eq 7)."""
    s = instance.system
    shape = (np.shape(instance.gating_weights)[0], len(s.compute_flops))
    down = np.broadcast_to(s.bs_power_w * np.asarray(s.gain_down, float), shape)
    up = np.broadcast_to(np.asarray(s.tx_power_w, float) * np.asarray(s.gain_up, float), shape)
    return (float(instance.model.token_bits), down / s.noise_psd_w_per_hz,
            up / s.noise_psd_w_per_hz,
            float(instance.model.token_flops) / np.asarray(s.compute_flops, float))


def _comm_times_s(bandwidth_hz, bits, snr_down, snr_up) -> np.ndarray:
    """Eq 6: ``c = L/R_down + L/R_up`` with ``R = B log2(1 + snr / B)`` (eqs 2-3) [I, U];
    inf for a device without bandwidth (``R(0) = 0``)."""
    B = np.broadcast_to(np.asarray(bandwidth_hz, float), snr_down.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = bits / (B * np.log2(1.0 + snr_down / B)) + bits / (B * np.log2(1.0 + snr_up / B))
    return np.where(B > 0, c, np.inf)


def device_of(instance, layer: int, expert: int) -> int:
    """The placement ``pi[i, e]`` (identity when the instance gives none)."""
    return expert if instance.placement is None else int(instance.placement[layer, expert])


def per_token_times_s(instance, bandwidth_hz) -> tuple[np.ndarray, np.ndarray]:
    """Eqs 6-7: communication ``c[i, k]`` [I, U] and computation ``a[k]`` [U] per token."""
    bits, snr_down, snr_up, a = _link_constants(instance)
    return _comm_times_s(bandwidth_hz, bits, snr_down, snr_up), a


def layer_loads(instance, layer: int, layer_mask) -> tuple[np.ndarray, ...]:
    """``(u, p, weight)`` [U] in one layer: distinct tokens sent to device ``k`` (one
    crossing per token), (token, expert) pairs on ``k``, and their summed gating weight."""
    w = instance.gating_weights[layer]
    J, E = np.shape(layer_mask)
    U = len(instance.system.compute_flops)
    u, p, weight = np.zeros(U), np.zeros(U), np.zeros(U)
    for k in range(U):
        on_k = [e for e in range(E) if device_of(instance, layer, e) == k]
        p[k] = sum(int(layer_mask[j][e]) for j in range(J) for e in on_k)
        u[k] = sum(int(any(layer_mask[j][e] for e in on_k)) for j in range(J))
        weight[k] = sum(float(w[j, e]) for j in range(J) for e in on_k if layer_mask[j][e])
    return u, p, weight


def loads(instance, mask) -> tuple[np.ndarray, np.ndarray]:
    """``(u, p)`` [I, U] (:func:`layer_loads` of every layer)."""
    per_layer = [layer_loads(instance, i, layer_mask) for i, layer_mask in enumerate(mask)]
    return np.array([x[0] for x in per_layer]), np.array([x[1] for x in per_layer])


def _times(u, p, c, a):
    """Eqs 8-10: ``t = u c + p a``, 0 for a device with no load (broadcasting)."""
    with np.errstate(invalid="ignore"):
        return np.where(p > 0, u * c + p * a, 0.0)


def device_times_s(instance, mask, bandwidth_hz) -> np.ndarray:
    """Eqs 8-10: ``t[i, k] = u c[i, k] + p a[k]`` [I, U], 0 for a device with no load."""
    u, p = loads(instance, mask)
    return _times(u, p, *per_token_times_s(instance, bandwidth_hz))


def total_latency_s(instance, mask, bandwidth_hz) -> float:
    """Eq 11 summed over layers: ``T = sum_i max_k t[i, k]``."""
    return float(device_times_s(instance, mask, bandwidth_hz).max(axis=1).sum())


def wlr(instance, mask, bandwidth_hz) -> np.ndarray:
    """Eq 12: ``WLR[i, k] = sum of the selected weights on k / t[i, k]`` [I, U], 0 if idle."""
    mask = np.asarray(mask, bool)
    c, a = per_token_times_s(instance, bandwidth_hz)
    return np.array([_layer_wlr(instance, i, mask[i], c[i], a) for i in range(mask.shape[0])])


def _layer_wlr(instance, layer: int, layer_mask, c, a) -> np.ndarray:
    u, p, weight = layer_loads(instance, layer, layer_mask)
    t = _times(u, p, c, a)
    return np.divide(weight, t, out=np.zeros_like(t), where=t > 0)


def uniform_split_hz(instance) -> np.ndarray:
    """The even split of the total bandwidth over all devices."""
    U = len(instance.system.compute_flops)
    return np.full(U, instance.system.total_bandwidth_hz / U)


def topk_mask(instance, k: int | None = None) -> np.ndarray:
    """The router's choice: the ``k`` (default the model's) largest weights of each token."""
    w = np.asarray(instance.gating_weights, float)
    k = instance.model.top_k if k is None else k
    mask = np.zeros(w.shape, bool)
    for idx in itertools.product(*map(range, w.shape[:2])):
        mask[idx][np.argsort(-w[idx], kind="stable")[:k]] = True
    return mask


def expert_latency_s(instance, bandwidth_hz) -> np.ndarray:
    """``tau[i, e] = c_pi(e) + a_pi(e)``, the per-token latency of each expert's device
    (Algorithm 1's latency vector, eq 18) [I, E]."""
    I, _, E = np.shape(instance.gating_weights)
    tau = np.empty((I, E))
    c, a = per_token_times_s(instance, bandwidth_hz)
    for i in range(I):
        for e in range(E):
            k = device_of(instance, i, e)
            tau[i, e] = c[i, k] + a[k]
    return tau


def cosine_similarity(rows: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """``cos(rows[i, j, :], vectors[i, :])`` [I, J] (eq 18); 0 for a zero row."""
    out = np.zeros(rows.shape[:2])
    for i, j in itertools.product(*map(range, rows.shape[:2])):
        x, y = rows[i, j], vectors[i]
        norm = math.sqrt(float(x @ x)) * math.sqrt(float(y @ y))
        out[i, j] = float(x @ y) / norm if norm > 0 else 0.0
    return out


# -- brute force -----------------------------------------------------------------------------
def allowed_mask(instance, support: str) -> np.ndarray:
    """The P2 feasible set's support: the router Top-K (``topk``) or every expert (``all``)."""
    if support == "topk":
        return topk_mask(instance)
    assert support == "all", support
    return np.ones(np.shape(instance.gating_weights), bool)


def token_choices(allowed_row: np.ndarray) -> np.ndarray:
    """Every non-empty subset of a token's allowed experts, as masks [C, E]."""
    ids = [e for e in range(allowed_row.size) if allowed_row[e]]
    choices = []
    for r in range(1, len(ids) + 1):
        for subset in itertools.combinations(ids, r):
            row = np.zeros(allowed_row.size, bool)
            row[list(subset)] = True
            choices.append(row)
    return np.array(choices)


def p2_enumerate(instance, bandwidth_hz, support: str = "topk", rel_tie: float = 1e-12):
    """Brute-force P2 (eqs 15-17): ``(best total WLR, [every optimal mask of layer i])``.
    Layers are independent (WLR of layer ``i`` depends on layer ``i`` only)."""
    allowed = allowed_mask(instance, support)
    I, J, E = allowed.shape
    best_total, optimal = 0.0, []
    c, a = per_token_times_s(instance, bandwidth_hz)
    for i in range(I):
        scored = []
        for combo in itertools.product(*[token_choices(allowed[i, j]) for j in range(J)]):
            scored.append((float(_layer_wlr(instance, i, combo, c[i], a).sum()),
                           np.array(combo)))
        best = max(v for v, _ in scored)
        best_total += best
        optimal.append([m for v, m in scored if v >= best * (1 - rel_tie)])
    return best_total, optimal


def _golden(f, lo: float, hi: float, iters: int = 90) -> float:
    """Minimum of a convex function of one variable on ``[lo, hi]`` (golden section)."""
    r = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - r * (b - a), a + r * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - r * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + r * (b - a)
            fd = f(d)
    return min(fc, fd, f(lo), f(hi))


def p3_optimum_s(instance, mask) -> float:
    """Optimal P3 latency (eqs 19-21, convex) for ``U <= 3`` by nested golden sections."""
    return p3_optimum_of_loads_s(instance, *loads(instance, mask))


def p3_optimum_of_loads_s(instance, u, p) -> float:
    """:func:`p3_optimum_s` of given loads ``u, p`` [I, U] (tokens and pairs per device)."""
    total = instance.system.total_bandwidth_hz
    U = len(instance.system.compute_flops)
    bits, snr_down, snr_up, a = _link_constants(instance)

    def T(b):
        return float(_times(u, p, _comm_times_s(b, bits, snr_down, snr_up), a)
                     .max(axis=1).sum())

    if U == 2:
        return _golden(lambda x: T([x, total - x]), 0.0, total)
    assert U == 3, "the nested search covers two or three devices"
    return _golden(lambda x: _golden(lambda y: T([x, y, total - x - y]), 0.0, total - x, 60),
                   0.0, total, 60)


def p1_uniform_optimum_s(instance, support: str = "topk") -> float:
    """P1 under the uniform reading: exact P2 at the uniform split, ties broken in the
    leader's favour (the best P3 optimum over every optimal selection), then P3."""
    _, optimal = p2_enumerate(instance, uniform_split_hz(instance), support)
    return min(p3_optimum_s(instance, np.stack(combo))
               for combo in itertools.product(*optimal))


def simplex_grid_hz(instance, steps: int) -> list[np.ndarray]:
    """Interior points of the bandwidth simplex on a grid of ``steps`` cells per device."""
    total, U = instance.system.total_bandwidth_hz, len(instance.system.compute_flops)
    cells = [c for c in itertools.product(range(1, steps), repeat=U - 1) if sum(c) < steps]
    return [np.array([*c, steps - sum(c)]) * total / steps for c in cells]


def coupled_point_latency_s(instance, bandwidth_hz, support: str = "topk") -> float:
    """Latency of the bilevel-feasible point of the coupled reading at ``bandwidth_hz``:
    the follower's optimal reply there, ties broken in the leader's favour."""
    _, optimal = p2_enumerate(instance, bandwidth_hz, support)
    return min(total_latency_s(instance, np.stack(combo), bandwidth_hz)
               for combo in itertools.product(*optimal))


def assert_bilevel_verdict(instance, solution, rtol: float) -> None:
    """A P1 solution's ``extra.bilevel_feasible`` agrees with brute force at the follower's
    bandwidth (the uniform split, or the leader's under the coupled reading): ``True``
    only if its selection is a best reply, ``False`` only if it is not, else ``None``."""
    extra = solution.extra
    follower = (uniform_split_hz(instance) if extra["lower_level"] == "uniform"
                else solution.bandwidth_hz)
    best, _ = p2_enumerate(instance, follower, extra["support"])
    own = float(wlr(instance, solution.selection.mask, follower).sum())
    verdict = extra["bilevel_feasible"]
    assert verdict is None or isinstance(verdict, bool), verdict
    assert verdict is not True or own >= best * (1 - rtol), (own, best)
    assert verdict is not False or own < best * (1 + rtol), (own, best)
