"""The independent check of a P5 (placement) solution document.

Like :mod:`wdmoe_opt.check`, it re-derives the latency of eqs. (2)-(11) from the
raw instance arrays and shares no code with the evaluator or the solvers: it
reads the placement, the capacities, the batches and each batch's bandwidth from
the document, and recomputes every batch's latency, the objective (their mean)
and the mean layer latencies. Only the comparison of reported and recomputed
numbers (``check._compare``), the claims of the bound, gap and ``optimal`` status
(``check._claims``) and the tolerance are shared with the P1-P3 checker, whose
``check_solution`` hands a ``"problem": "p5"`` document to :func:`check_p5`.
"""

from __future__ import annotations

import numpy as np

from .check import RTOL, STATUSES, _claims
from .check import _compare as _close
from .model import Instance


def check_p5(instance: Instance, doc: dict) -> list[str]:
    """Return the violations of P5 solution ``doc`` on the trace ``instance`` (empty =
    valid): hash, placement ids and capacities, batches, per-batch bandwidth (eqs.
    20-21), selection (eq. 16; the router Top-K for the ``topk`` policy), then the
    recomputed batch latencies (eq. 13), their mean (``objective_s``), the bound and
    the gap, and an ``optimal`` status only within the stated tolerance."""
    I, J, E = instance.gating_weights.shape
    U = instance.n_devices
    if doc.get("schema") != "wdmoe-solution/1":
        return [f"schema: expected 'wdmoe-solution/1', got {doc.get('schema')!r}"]
    out: list[str] = []
    if doc.get("problem") != "p5":
        out.append(f"problem: expected 'p5', got {doc.get('problem')!r}")
    if (doc.get("instance") or {}).get("hash") != instance.content_hash:
        out.append(f"instance.hash: does not match the instance ({instance.content_hash})")
    if doc.get("status") not in STATUSES:
        out.append(f"status: {doc.get('status')!r} is not one of {', '.join(STATUSES)}")
    extra = doc.get("extra") or {}
    pl = _placement(doc.get("placement"), I, E, U, out)
    copies = None
    if pl is not None:
        copies = _replicas(doc.get("replicas"), pl, U, out)
        _capacities(pl, copies, instance, extra.get("capacity_experts"), out)
    jb = extra.get("batch_tokens")
    if not isinstance(jb, int) or isinstance(jb, bool) or jb < 1 or J % jb:
        out.append(f"extra.batch_tokens: {jb!r} does not divide the trace's {J} tokens")
        return out
    n_batches = J // jb
    q = _selection(doc.get("selection"), I, J, E, out)
    bw = _bandwidths(extra.get("batch_bandwidth_hz"), n_batches, U,
                     instance.system.total_bandwidth_hz, out)
    if pl is None or copies is None or q is None or bw is None:
        return out
    dev = _route(extra, copies, q, jb, out)
    if dev is None:
        return out
    if extra.get("selection_policy") == "topk":
        k = instance.model.top_k
        kth = np.sort(instance.gating_weights, axis=2)[:, :, -k][:, :, None]
        if (q & (instance.gating_weights < kth)).any() or (q.sum(axis=2) != k).any():
            out.append("selection: is not the router Top-K (policy 'topk')")
    layer = np.stack([_batch_layers(instance, dev[:, n * jb:(n + 1) * jb], bw[n])
                      for n in range(n_batches)])                     # [N, I]
    _close(out, "extra.batch_latency_s", extra.get("batch_latency_s"), layer.sum(axis=1))
    _close(out, "layer_latency_s", doc.get("layer_latency_s"), layer.mean(axis=0))
    objective = float(layer.sum(axis=1).mean())
    _close(out, "objective_s", doc.get("objective_s"), objective)
    _close(out, "bandwidth_hz", doc.get("bandwidth_hz"), bw.mean(axis=0))
    _claims(out, doc, "p5", objective, 0.0)      # bound, gap, optimal within tolerance
    return out


def _placement(raw, I: int, E: int, U: int, out: list[str]) -> np.ndarray | None:
    try:
        pl = np.asarray(raw)
    except (TypeError, ValueError):
        pl = np.zeros(0)
    if pl.shape != (I, E) or pl.dtype.kind not in "iu":
        out.append(f"placement: must be [{I}][{E}] integer device ids")
        return None
    if (pl < 0).any() or (pl >= U).any():
        i, e = np.argwhere((pl < 0) | (pl >= U))[0]
        out.append(f"placement[{i}][{e}]: device {pl[i, e]} outside 0..{U - 1}")
        return None
    return pl.astype(np.int64)


def _replicas(raw, pl: np.ndarray, U: int, out: list[str]) -> list | None:
    """``[I][E]`` lists of the devices holding each expert: ``replicas`` when the
    document has it (distinct ids, the first the placement's), else the placement."""
    I, E = pl.shape
    if raw is None:
        return [[[int(pl[i, e])] for e in range(E)] for i in range(I)]
    if not isinstance(raw, list) or len(raw) != I or any(
            not isinstance(row, list) or len(row) != E for row in raw):
        out.append(f"replicas: must be [{I}][{E}] lists of device ids")
        return None
    for i, row in enumerate(raw):
        for e, devs in enumerate(row):
            if (not isinstance(devs, list) or not devs
                    or any(isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < U
                           for k in devs) or len(set(devs)) != len(devs)):
                out.append(f"replicas[{i}][{e}]: {devs!r} is not a list of distinct "
                           f"device ids in 0..{U - 1}")
                return None
            if devs[0] != pl[i, e]:
                out.append(f"replicas[{i}][{e}]: starts with device {devs[0]}, not the "
                           f"placement's {pl[i, e]}")
                return None
    return raw


def _route(extra: dict, copies: list, q: np.ndarray, jb: int,
           out: list[str]) -> np.ndarray | None:
    """``[I, J, E]`` the device serving each selected pair (-1 elsewhere): the stated
    ``extra.route`` (each device must hold the expert; with ``route_rule`` "split", it
    must be the rule's; "given": any such route), or the only copy when nothing is
    replicated."""
    I, J, E = q.shape
    single = all(len(devs) == 1 for row in copies for devs in row)
    raw, rule = extra.get("route"), extra.get("route_rule")
    if raw is None:
        if not single:
            out.append("extra.route: required when experts are replicated")
            return None
        first = np.array([[devs[0] for devs in row] for row in copies], dtype=np.int64)
        return np.where(q, first[:, None, :], -1)
    if rule not in ("split", "given"):
        out.append(f"extra.route_rule: unknown rule {rule!r}")
    if not isinstance(raw, list) or len(raw) != I or any(
            not isinstance(row, list) or len(row) != J for row in raw):
        out.append(f"extra.route: must be [{I}][{J}] lists of device ids")
        return None
    dev = np.full((I, J, E), -1, dtype=np.int64)
    for i in range(I):
        for j in range(J):
            experts = np.flatnonzero(q[i, j])
            if not isinstance(raw[i][j], list) or len(raw[i][j]) != experts.size:
                out.append(f"extra.route[{i}][{j}]: one device per selected expert needed")
                return None
            for e, k in zip(experts, raw[i][j], strict=True):
                if isinstance(k, bool) or k not in copies[i][e]:
                    out.append(f"extra.route[{i}][{j}]: device {k!r} holds no copy of "
                               f"expert {e}")
                    return None
                dev[i, j, e] = k
    if rule == "split":
        bad = np.argwhere((dev != split_devices(copies, q, jb)).any(axis=1))
        if bad.size:
            out.append(f"extra.route: layer {bad[0][0]}, expert {bad[0][1]} is not routed "
                       "by the split rule")
    return dev


def split_devices(copies: list, q: np.ndarray, jb: int) -> np.ndarray:
    """``[I, J, E]``: the device the split rule sends each selected pair of ``q`` to
    (-1 elsewhere), pair by pair: in each batch of ``jb`` tokens, the tokens selecting
    some expert whose first copy is that of ``e`` are ranked; the one of rank ``t``
    of ``n`` goes to copy ``floor(t R / n)`` of the ``R`` copies of ``e``."""
    I, J, E = q.shape
    dev = np.full((I, J, E), -1, dtype=np.int64)
    for i in range(I):
        for e in range(E):
            devs = copies[i][e]
            group = [f for f in range(E) if copies[i][f][0] == devs[0]]
            for start in range(0, J, jb):
                ranked = [j for j in range(start, start + jb) if q[i, j, group].any()]
                for t, j in enumerate(ranked):
                    if q[i, j, e]:
                        dev[i, j, e] = devs[t * len(devs) // len(ranked)]
    return dev


def _capacities(pl: np.ndarray, copies: list | None, instance: Instance, stated,
                out: list[str]) -> None:
    I, U = pl.shape[0], instance.n_devices
    hosted = np.zeros((I, U), dtype=np.int64)
    for i in range(I):
        devs = pl[i] if copies is None else [k for c in copies[i] for k in c]
        ids, n = np.unique(devs, return_counts=True)
        hosted[i, ids] = n
    limits = []
    own = instance.system.capacity_experts
    if own is not None:
        limits.append(("the instance's capacity_experts", np.broadcast_to(own, (I, U))))
    mem = instance.system.capacity_bytes
    if mem is not None:   # the memory split evenly over the layers, in whole experts
        per_layer = (mem // (I * instance.model.expert_size_bytes)).astype(np.int64)
        limits.append(("the instance's capacity_bytes", np.broadcast_to(per_layer, (I, U))))
    if stated is not None:
        cap = np.asarray(stated)
        if cap.shape != (I, U):
            out.append(f"extra.capacity_experts: must be [{I}][{U}]")
        else:
            limits.append(("extra.capacity_experts", cap))
    for name, cap in limits:
        over = hosted > cap
        if over.any():
            i, k = np.argwhere(over)[0]
            out.append(f"placement[{i}]: device {k} hosts {hosted[i, k]} experts, over "
                       f"{name} ({cap[i, k]})")


def _selection(raw, I: int, J: int, E: int, out: list[str]) -> np.ndarray | None:
    if isinstance(raw, np.ndarray):           # the .npz solution form: the mask itself
        if raw.shape != (I, J, E) or raw.dtype != np.bool_:
            out.append(f"selection: must be an [{I}][{J}][{E}] mask")
            return None
        if not raw.any(axis=2).all():
            i, j = np.argwhere(~raw.any(axis=2))[0]
            out.append(f"selection[{i}][{j}]: token keeps no expert (eq. 16)")
            return None
        return raw
    if not isinstance(raw, list) or len(raw) != I or any(
            not isinstance(layer, list) or len(layer) != J for layer in raw):
        out.append(f"selection: must be [{I}][{J}] lists of expert ids")
        return None
    q = np.zeros((I, J, E), dtype=bool)
    for i, layer in enumerate(raw):
        for j, kept in enumerate(layer):
            if not kept:
                out.append(f"selection[{i}][{j}]: token keeps no expert (eq. 16)")
                return None
            if any(not isinstance(e, int) or not 0 <= e < E for e in kept):
                out.append(f"selection[{i}][{j}]: expert ids {kept!r} outside 0..{E - 1}")
                return None
            q[i, j, kept] = True
    return q


def _bandwidths(raw, n: int, U: int, total: float, out: list[str]) -> np.ndarray | None:
    try:
        bw = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        bw = np.zeros(0)
    if bw.shape != (n, U):
        out.append(f"extra.batch_bandwidth_hz: must be [{n}][{U}] numbers")
        return None
    for b in range(n):
        if not np.isfinite(bw[b]).all() or (bw[b] < 0).any():
            out.append(f"extra.batch_bandwidth_hz[{b}]: negative or not finite (eq. 21)")
        if abs(bw[b].sum() - total) > RTOL * total:
            out.append(f"extra.batch_bandwidth_hz[{b}]: sums to {bw[b].sum()!r}, not the "
                       f"total {total!r} (eq. 20)")
    return bw


def _batch_layers(instance: Instance, dev: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[I]`` layer latencies (eq. 11) of one batch, device by device, from the device
    ``dev`` ``[I, Jb, E]`` serving each selected pair (-1 elsewhere)."""
    s, m = instance.system, instance.model
    I, U = dev.shape[0], instance.n_devices
    out = np.zeros(I)
    for k in range(U):
        down = s.gain_down[..., k] * s.bs_power_w
        up = s.gain_up[..., k] * s.tx_power_w[k]
        with np.errstate(divide="ignore"):
            per_token = (m.token_bits / (b[k] * np.log2(1 + down / (s.noise_psd_w_per_hz * b[k])))
                         + m.token_bits / (b[k] * np.log2(1 + up / (s.noise_psd_w_per_hz * b[k])))
                         ) if b[k] > 0 else np.inf
        per_token = np.broadcast_to(per_token, (I,))
        sent = dev == k                                            # [I, Jb, E]
        pairs = sent.sum(axis=(1, 2))                              # [I]
        tokens = sent.any(axis=2).sum(axis=1)                      # [I]
        with np.errstate(invalid="ignore"):
            t = np.where(tokens > 0, tokens * per_token, 0.0) \
                + pairs * m.token_flops / s.compute_flops[k]
        out = np.maximum(out, t)
    return out
