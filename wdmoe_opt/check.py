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


SUPPORTS = ("topk", "all")

#: Problem key -> its own checks ``fn(instance, doc, q, b, out)``, run after the common
#: ones (``q`` the selection mask, ``b`` the bandwidth); a new problem adds its entry.
PROBLEM_CHECKS: dict = {}

#: Per-layer enumeration limit of the follower check (constraint 15 of P1).
FOLLOWER_LIMIT = 20_000


def check_solution(instance: Instance, doc: dict, notes: list[str] | None = None, *,
                   problem: str | None = None, support: str | None = None) -> list[str]:
    """Return the violations of solution document ``doc`` on ``instance`` (empty = valid).

    Checks the instance hash, eqs. (20)-(21) on the bandwidth, eq. (16) (every
    token keeps >= 1 expert) and the support of the problem (Top-K unless the
    document says ``"all"``; P3 takes its selection as given), then recomputes the
    layer latencies (eq. 11), the objective (eq. 13), the total WLR (eq. 12), the
    retained weight, the expert invocations and the gap, and holds every claim to
    it: a lower bound (P1, P3) at most the objective, a WLR upper bound (P2) at least
    the WLR, an ``optimal`` status only with a bound within the stated tolerance, a
    P1 point said bilevel-feasible (or optimal) only if its selection is optimal for
    P2 at the follower's bandwidth (verified by enumeration where tractable; else a
    line in ``notes``), a floor point only at or above its floor.

    ``problem`` and ``support``, when given (the benchmark's), override what the
    document says of itself: a document of another problem is a violation, and the
    support checked is the given one.
    """
    if isinstance(doc, dict) and doc.get("problem") == "p5" and problem in (None, "p5"):
        from .check_placement import check_p5  # a trace of batches: checked batch by batch
        return check_p5(instance, doc)
    if isinstance(doc, dict) and doc.get("placement") is not None:
        try:   # solved under a P5 placement (solve --placement-from): check it there
            instance = instance.replace(placement=doc["placement"],
                                        replicas=doc.get("replicas"))
        except InputError as exc:
            return [str(exc)]
    notes = [] if notes is None else notes
    I, J, E = instance.gating_weights.shape
    U = instance.n_devices
    out: list[str] = []
    if doc.get("schema") != "wdmoe-solution/1":
        return [f"schema: expected 'wdmoe-solution/1', got {doc.get('schema')!r}"]
    if doc.get("problem") == "p4":         # its own checker: a token may invoke no expert
        from .check_energy import check_p4
        return check_p4(instance, doc)
    inst_ref = doc.get("instance")
    found = inst_ref.get("hash") if isinstance(inst_ref, dict) else None
    if found != instance.content_hash:
        out.append(f"instance.hash: {found!r} does not match the instance "
                   f"({instance.content_hash})")
    if problem is not None and doc.get("problem") != problem:
        out.append(f"problem: the document says {doc.get('problem')!r}, the benchmark is "
                   f"{problem!r}")
    problem = doc.get("problem")
    known = ("p1", "p2", "p3", "p1-floor", "p4", *PROBLEM_CHECKS)
    if problem not in known:
        return out + [f"problem: {problem!r} is not one of {', '.join(known)}"]
    if doc.get("status") not in STATUSES:
        out.append(f"status: {doc.get('status')!r} is not one of {', '.join(STATUSES)}")
    support = support or doc.get("support") or "topk"
    if support not in SUPPORTS:
        out.append(f"support: {support!r} is not one of {', '.join(SUPPORTS)}")
    b = _bandwidth(doc.get("bandwidth_hz"), U, instance.system.total_bandwidth_hz, out)
    q = _selection(doc.get("selection"), (I, J, E), out)
    if b is None or q is None:
        return out
    empty = ~q.any(axis=2)
    if empty.any():
        i, j = np.argwhere(empty)[0]
        out.append(f"selection[{i}][{j}]: token keeps no expert (eq. 16)")
    if problem != "p3" and support == "topk":
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
    retained = float((q * instance.gating_weights).sum() / topk_total)
    _compare(out, "retained_weight", doc.get("retained_weight"), retained)
    if doc.get("expert_invocations") != int(q.sum()):
        out.append(f"expert_invocations: reported {doc.get('expert_invocations')!r}, "
                   f"counted {int(q.sum())}")
    _claims(out, doc, problem, objective, wlr_total)
    if problem == "p1-floor":
        floor = (doc.get("extra") or {}).get("min_retained_weight")
        if not _is_number(floor):
            out.append("extra.min_retained_weight: a p1-floor solution must state its floor")
        elif retained < floor * (1 - RTOL):
            out.append(f"retained_weight: {retained!r} is below the floor {floor!r}")
    if problem == "p1":
        _follower(out, notes, instance, doc, q, b, support)
    if problem in PROBLEM_CHECKS:
        PROBLEM_CHECKS[problem](instance, doc, q, b, out)
    return out


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _claims(out: list[str], doc: dict, problem: str, objective: float, wlr_total: float):
    """The bound of the problem, the gap computed from it, and an ``optimal`` status
    within the stated tolerance."""
    maximize = problem == "p2"
    name = "wlr_upper_bound" if maximize else "lower_bound_s"
    bound, value = doc.get(name), (wlr_total if maximize else objective)
    if bound is not None and not _is_number(bound):
        out.append(f"{name}: {bound!r} is not a finite number")
        bound = None
    if bound is not None:
        if maximize and bound < value * (1 - RTOL):
            out.append(f"{name}: {bound!r} is below the recomputed WLR {value!r}")
        if not maximize and math.isfinite(value) and bound > value * (1 + RTOL):
            out.append(f"{name}: {bound!r} exceeds the recomputed objective {value!r}")
    gap = None
    if bound is not None and math.isfinite(value) and value != 0:
        gap = max((bound - value) if maximize else (value - bound), 0.0) / abs(
            bound if maximize else value)
        reported = doc.get("gap")
        if not _is_number(reported) or abs(reported - gap) > RTOL + RTOL * abs(gap):
            out.append(f"gap: reported {reported!r}, recomputed {gap!r}")
    if doc.get("status") == "optimal":
        tol = doc.get("tolerance")
        if bound is None:
            out.append(f"status: 'optimal' without a {name}")
        elif not _is_number(tol) or tol < 0:
            out.append(f"status: 'optimal' without a stated tolerance (tolerance: {tol!r})")
        elif gap is not None and gap > tol + RTOL:
            out.append(f"status: 'optimal' with a gap of {gap:.3g}, above the stated "
                       f"tolerance {tol!r}")


def _follower(out, notes, instance: Instance, doc: dict, q: np.ndarray, b: np.ndarray,
              support: str) -> None:
    """Constraint 15 of P1: a point said bilevel-feasible (or optimal) has a selection
    that is optimal for P2 at the follower's bandwidth (SPEC §2's reading)."""
    extra = doc.get("extra") or {}
    if not (extra.get("bilevel_feasible") is True or doc.get("status") == "optimal"):
        return
    reading = extra.get("lower_level", "uniform")
    if reading not in ("uniform", "coupled"):
        out.append(f"extra.lower_level: {reading!r} is not 'uniform' or 'coupled'")
        return
    U = instance.n_devices
    fb = (np.full(U, instance.system.total_bandwidth_hz / U) if reading == "uniform" else b)
    tie = float(extra.get("tie_tol", 1e-9)) if _is_number(extra.get("tie_tol")) else 1e-9
    allowed = (_topk_allowed(instance.gating_weights, instance.model.top_k)
               if support == "topk" else np.ones(q.shape, dtype=bool))
    for i in range(instance.n_layers):
        best = _best_layer_wlr(instance, i, allowed[i], fb)
        if best is None:
            notes.append("bilevel feasibility not verified: the follower's problem is too "
                         "large to enumerate")
            return
        own = _layer_wlr(instance, i, q[i][None], fb)[0]
        if own < best * (1 - tie) * (1 - RTOL):
            out.append(f"selection[{i}]: not optimal for P2 at the follower's bandwidth "
                       f"({reading} reading): WLR {own!r} < {best!r} (constraint 15)")
            return


def _best_layer_wlr(instance: Instance, i: int, allowed: np.ndarray, b: np.ndarray):
    """The largest WLR of layer ``i`` over every selection under ``allowed`` (``None``
    when there are more than :data:`FOLLOWER_LIMIT`)."""
    per_token = []
    for row in allowed:
        ids = np.flatnonzero(row)
        subsets = [m for m in range(1, 2 ** len(ids))]
        masks = np.zeros((len(subsets), row.size), dtype=bool)
        for n, m in enumerate(subsets):
            masks[n, ids[[bit for bit in range(len(ids)) if m >> bit & 1]]] = True
        per_token.append(masks)
    if math.prod(len(m) for m in per_token) > FOLLOWER_LIMIT:
        return None
    grids = np.meshgrid(*[np.arange(len(m)) for m in per_token], indexing="ij")
    cands = np.stack([per_token[j][g.ravel()] for j, g in enumerate(grids)], axis=1)
    return float(_layer_wlr(instance, i, cands, b).max())


def _layer_wlr(instance: Instance, i: int, masks: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Eq. (12) summed over devices for candidate masks ``[n, J, E]`` of layer ``i``."""
    s, m = instance.system, instance.model
    total = np.zeros(masks.shape[0])
    for k in range(instance.n_devices):
        on_k = instance.placement[i] == k
        sent = masks[:, :, on_k]
        pairs = sent.sum(axis=(1, 2))
        tokens = sent.any(axis=2).sum(axis=1)
        weight = (sent * instance.gating_weights[i][:, on_k]).sum(axis=(1, 2))
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (tokens * _comm_per_token(instance, b, i, k)
                 + pairs * (m.token_flops / s.compute_flops[k]))
            total += np.where(pairs > 0, weight / t, 0.0)
    return total


def _comm_per_token(instance: Instance, b: np.ndarray, i: int, k: int) -> float:
    """Eq. (6) for device ``k`` in layer ``i`` at bandwidth ``b[k]`` (``inf`` at 0;
    0 on a ``local`` device, which has no link)."""
    s = instance.system
    if s.local is not None and s.local[k]:
        return 0.0
    if b[k] <= 0:
        return math.inf
    g_down = s.gain_down[i] if s.gain_down.ndim == 2 else s.gain_down
    g_up = s.gain_up[i] if s.gain_up.ndim == 2 else s.gain_up
    snr_down = s.bs_power_w * g_down[k] / (s.noise_psd_w_per_hz * b[k])
    snr_up = s.tx_power_w[k] * g_up[k] / (s.noise_psd_w_per_hz * b[k])
    bits = instance.model.token_bits
    rate_down = b[k] * math.log1p(snr_down) / math.log(2)
    rate_up = b[k] * math.log1p(snr_up) / math.log(2)
    return bits / rate_down + bits / rate_up if rate_down > 0 and rate_up > 0 else math.inf


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


def _pair_devices(instance: Instance, q: np.ndarray) -> np.ndarray:
    """``[I, J, E]``: the device serving each selected pair (-1 elsewhere): the expert's
    placement, or with replicated experts the instance's ``route`` where it is set and
    the split rule elsewhere (``check_placement.split_devices``)."""
    if instance.replicas is None:
        return np.where(q, instance.placement[:, None, :], -1)
    from .check_placement import split_devices
    from .model.replicas import replica_lists
    dev = split_devices(replica_lists(instance.replicas), q, q.shape[1])
    if instance.route is not None:
        dev = np.where(q & (instance.route >= 0), instance.route, dev)
    return dev


def _recompute(instance: Instance, q: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float]:
    """Layer latencies (eq. 11) and total WLR (eq. 12), one layer at a time."""
    s, m = instance.system, instance.model
    I, U = instance.n_layers, instance.n_devices
    layer = np.zeros(I)
    wlr_total = 0.0
    dev = _pair_devices(instance, q)
    for i in range(I):
        for k in range(U):
            sent = dev[i] == k                                # [J, E]
            pairs = int(sent.sum())
            if pairs == 0:
                continue
            tokens = int(sent.any(axis=1).sum())
            comm = _comm_per_token(instance, b, i, k)
            t = math.inf if math.isinf(comm) else (
                tokens * comm + pairs * (m.token_flops / s.compute_flops[k]))
            layer[i] = max(layer[i], t)
            weight = float((instance.gating_weights[i] * sent).sum())
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
