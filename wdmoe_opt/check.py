"""The independent checker: feasibility and objective recomputation of a solution file.

It deliberately re-derives eqs. (2)-(12) here, layer by layer from the raw
instance arrays, without the vectorized evaluator of :mod:`wdmoe_opt.model.latency`
or any solver code, so a bug there cannot hide a bug here.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import InputError
from .io import selection_mask
from .model import Instance

#: Relative tolerance for recomputed numbers and for ``sum B_k = B``.
RTOL = 1e-6
STATUSES = ("optimal", "feasible", "time_limit", "infeasible", "error")


def check_solution(instance: Instance, doc: dict) -> list[str]:
    """Return the violations of solution document ``doc`` on ``instance`` (empty = valid).

    Checks the instance hash, eqs. (20)-(21) on the bandwidth, eq. (16) (every
    token keeps >= 1 expert) and the stated support, then recomputes the layer
    latencies (eq. 11), the objective (eq. 13), the total WLR (eq. 12) and the
    retained weight, and that a lower bound does not exceed the objective.
    """
    I, J, E = instance.gating_weights.shape
    U = instance.n_devices
    out: list[str] = []
    if doc.get("schema") != "wdmoe-solution/1":
        return [f"schema: expected 'wdmoe-solution/1', got {doc.get('schema')!r}"]
    inst_ref = doc.get("instance") or {}
    if inst_ref.get("hash") != instance.content_hash:
        out.append(f"instance.hash: {inst_ref.get('hash')!r} does not match the instance "
                   f"({instance.content_hash})")
    if doc.get("status") not in STATUSES:
        out.append(f"status: {doc.get('status')!r} is not one of {', '.join(STATUSES)}")
    b = _bandwidth(doc.get("bandwidth_hz"), U, instance.system.total_bandwidth_hz, out)
    q = _selection(doc.get("selection"), (I, J, E), out)
    if b is None or q is None:
        return out
    empty = ~q.any(axis=2)
    if empty.any():
        i, j = np.argwhere(empty)[0]
        out.append(f"selection[{i}][{j}]: token keeps no expert (eq. 16)")
    if doc.get("support") == "topk":
        outside = q & ~_topk_allowed(instance.gating_weights, instance.model.top_k)
        if outside.any():
            i, j, e = np.argwhere(outside)[0]
            out.append(f"selection[{i}][{j}]: expert {e} is outside the token's router Top-K "
                       "(support 'topk')")
    layer, wlr_total = _recompute(instance, q, b)
    _compare(out, "layer_latency_s", doc.get("layer_latency_s"), layer)
    objective = float(layer.sum())
    _compare(out, "objective_s", doc.get("objective_s"), objective)
    _compare(out, "wlr_total", doc.get("wlr_total"), wlr_total)
    topk_total = np.sort(instance.gating_weights, axis=2)[:, :, -instance.model.top_k:].sum()
    _compare(out, "retained_weight", doc.get("retained_weight"),
             float((q * instance.gating_weights).sum() / topk_total))
    lb = doc.get("lower_bound_s")
    if lb is not None and math.isfinite(objective) and lb > objective * (1 + RTOL):
        out.append(f"lower_bound_s: {lb!r} exceeds the recomputed objective {objective!r}")
    return out


def _bandwidth(raw, U: int, total: float, out: list[str]) -> np.ndarray | None:
    try:
        b = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        out.append("bandwidth_hz: must be a list of numbers")
        return None
    if b.shape != (U,):
        out.append(f"bandwidth_hz: expected {U} values, got shape {b.shape}")
        return None
    if not np.isfinite(b).all() or (b < 0).any():
        k = int(np.argmax(~np.isfinite(b) | (b < 0)))
        out.append(f"bandwidth_hz[{k}]: {b[k]!r} is negative or not finite (eq. 21)")
    if abs(b.sum() - total) > RTOL * total:
        out.append(f"bandwidth_hz: sums to {b.sum()!r}, not the total {total!r} (eq. 20)")
    return b


def _selection(raw, shape: tuple[int, int, int], out: list[str]) -> np.ndarray | None:
    """The mask of ``selection``: a boolean array (``.npz`` file) or lists (JSON)."""
    try:
        return selection_mask(raw, shape)
    except InputError as exc:
        out.append(str(exc))
        return None


def _topk_allowed(w: np.ndarray, k: int) -> np.ndarray:
    """Experts whose weight reaches the token's K-th largest (ties all allowed)."""
    kth = np.sort(w, axis=2)[:, :, -k][:, :, None]
    return w >= kth


def _recompute(instance: Instance, q: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float]:
    """Layer latencies (eq. 11) and total WLR (eq. 12), one layer at a time."""
    s, m = instance.system, instance.model
    I, U = instance.n_layers, instance.n_devices
    layer = np.zeros(I)
    wlr_total = 0.0
    for i in range(I):
        g_down = s.gain_down[i] if s.gain_down.ndim == 2 else s.gain_down
        g_up = s.gain_up[i] if s.gain_up.ndim == 2 else s.gain_up
        for k in range(U):
            experts_on_k = instance.placement[i] == k
            sent = q[i][:, experts_on_k]                  # [J, experts on k]
            pairs = int(sent.sum())
            if pairs == 0:
                continue
            tokens = int(sent.any(axis=1).sum())
            if b[k] <= 0:
                t = math.inf
            else:
                snr_down = s.bs_power_w * g_down[k] / (s.noise_psd_w_per_hz * b[k])
                snr_up = s.tx_power_w[k] * g_up[k] / (s.noise_psd_w_per_hz * b[k])
                comm = m.token_bits / (b[k] * math.log2(1 + snr_down)) \
                    + m.token_bits / (b[k] * math.log2(1 + snr_up))
                t = tokens * comm + pairs * m.token_flops / s.compute_flops[k]
            layer[i] = max(layer[i], t)
            weight = float((instance.gating_weights[i][:, experts_on_k] * sent).sum())
            wlr_total += weight / t
    return layer, wlr_total


def _compare(out: list[str], name: str, reported, expected) -> None:
    exp = np.asarray(expected, dtype=np.float64)
    if reported is None:
        if np.all(np.isfinite(exp)):
            out.append(f"{name}: missing (recomputed {expected!r})")
        return
    try:
        rep = np.asarray(reported, dtype=np.float64)
    except (TypeError, ValueError):
        out.append(f"{name}: must be numbers")
        return
    if rep.shape != exp.shape:
        out.append(f"{name}: shape {rep.shape} differs from {exp.shape}")
        return
    bad = ~np.isclose(rep, exp, rtol=RTOL, atol=0.0) & ~(np.isinf(exp) & np.isnan(rep))
    if bad.any():
        idx = int(np.argmax(bad.ravel()))
        where = f"[{idx}]" if rep.ndim else ""
        out.append(f"{name}{where}: reported {float(rep.ravel()[idx])!r}, recomputed "
                   f"{float(exp.ravel()[idx])!r}")
