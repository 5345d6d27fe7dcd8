"""The independent checker of P4 solutions (SPEC §6).

Like :mod:`wdmoe_opt.check`, it re-derives everything from the raw instance arrays,
one layer and device at a time, without the vectorized evaluator
(:mod:`wdmoe_opt.model.latency`, :mod:`wdmoe_opt.model.deviation`) or any solver
code: the actions' validity, every token's deviation (SiftMoE's Prop. 1), the device
loads, the layer latencies (eq. 11) and the energy (downlink, uplink, compute; no
link for a ``local`` device), then the budgets and deadlines the solution claims.
"""

from __future__ import annotations

import math

import numpy as np

from .check import RTOL, STATUSES, _bandwidth, _compare, _selection
from .model import Instance


def check_p4(instance: Instance, doc: dict) -> list[str]:
    """Return the violations of P4 solution document ``doc`` on ``instance`` (empty = valid)."""
    I, J, E = instance.gating_weights.shape
    out: list[str] = []
    if doc.get("schema") != "wdmoe-solution/1":
        return [f"schema: expected 'wdmoe-solution/1', got {doc.get('schema')!r}"]
    if doc.get("problem") != "p4":
        return [f"problem: expected 'p4', got {doc.get('problem')!r}"]
    if (doc.get("instance") or {}).get("hash") != instance.content_hash:
        out.append(f"instance.hash does not match the instance ({instance.content_hash})")
    if doc.get("status") not in STATUSES:
        out.append(f"status: {doc.get('status')!r} is not one of {', '.join(STATUSES)}")
    sim = instance.similarity
    if sim is None:
        return out + ["instance: has no similarity block, so P4 cannot be checked"]
    b = _bandwidth(doc.get("bandwidth_hz"), instance.n_devices,
                   instance.system.total_bandwidth_hz, out)
    invoked = _actions(instance, doc.get("actions"), out)
    if b is None or invoked is None:
        return out
    targets, dev = invoked
    q = _selection(doc.get("selection"), (I, J, E), out)   # lists (JSON) or a mask (.npz)
    if q is None:
        return out
    bad = next(((i, j) for i in range(I) for j in range(J)
                if sorted(np.flatnonzero(q[i, j]).tolist()) != sorted(targets[i][j])), None)
    if bad is not None:
        out.append(f"selection[{bad[0]}][{bad[1]}]: is not the invoked experts "
                   f"{sorted(targets[bad[0]][bad[1]])!r}")
    layer_s, layer_e = _times_and_energy(instance, targets, b)
    _compare(out, "deviation_max", doc.get("deviation_max"), dev.max(axis=1))
    _compare(out, "layer_latency_s", doc.get("layer_latency_s"), layer_s)
    _compare(out, "objective_s", doc.get("objective_s"), float(layer_s.sum()))
    _compare(out, "layer_energy_j", doc.get("layer_energy_j"), layer_e)
    _compare(out, "energy_j", doc.get("energy_j"), float(layer_e.sum()))
    energy = float(layer_e.sum())
    _energy_claims(out, doc, energy)
    if doc.get("status") in ("optimal", "feasible", "time_limit"):
        budget = _per_layer(doc.get("deviation_budget"), I, "deviation_budget", out)
        deadline = _per_layer(doc.get("deadline_s"), I, "deadline_s", out)
        for i in range(I):
            if budget is not None and dev[i].max() > budget[i] * (1 + RTOL):
                out.append(f"layer {i}: deviation {dev[i].max()!r} exceeds the budget "
                           f"{budget[i]!r} (status {doc.get('status')})")
            if deadline is not None and layer_s[i] > deadline[i] * (1 + RTOL):
                out.append(f"layer {i}: latency {layer_s[i]!r} exceeds the deadline "
                           f"{deadline[i]!r} (status {doc.get('status')})")
    return out


def _energy_claims(out: list[str], doc: dict, energy: float) -> None:
    """The energy bound, the gap computed from it, and an ``optimal`` status within
    the stated tolerance."""
    lb = doc.get("energy_lower_bound_j")
    if lb is not None and not (isinstance(lb, (int, float)) and math.isfinite(lb)):
        out.append(f"energy_lower_bound_j: {lb!r} is not a finite number")
        lb = None
    gap = None
    if lb is not None:
        if lb > energy * (1 + RTOL) + 1e-15:
            out.append(f"energy_lower_bound_j: {lb!r} exceeds the recomputed energy {energy!r}")
        gap = 0.0 if energy == lb else max(energy - lb, 0.0) / abs(energy)
        reported = doc.get("energy_gap")
        if reported is not None and abs(reported - gap) > RTOL + RTOL * gap:
            out.append(f"energy_gap: reported {reported!r}, recomputed {gap!r}")
    if doc.get("status") == "optimal":
        tol = doc.get("tolerance")
        if lb is None:
            out.append("status: 'optimal' without an energy_lower_bound_j")
        elif not isinstance(tol, (int, float)) or tol < 0:
            out.append(f"status: 'optimal' without a stated tolerance (tolerance: {tol!r})")
        elif gap is not None and gap > tol + RTOL:
            out.append(f"status: 'optimal' with an energy gap of {gap:.3g}, above the stated "
                       f"tolerance {tol!r}")


def _per_layer(raw, I: int, name: str, out: list[str]) -> np.ndarray | None:
    """A ``[I]`` list where ``null`` means no limit (JSON has no infinity)."""
    if not isinstance(raw, list) or len(raw) != I:
        out.append(f"{name}: must be a list of {I} numbers or nulls")
        return None
    return np.array([math.inf if x is None else float(x) for x in raw])


def _actions(instance: Instance, raw, out: list[str]):
    """Per token the invoked experts and the deviation ``[I, J]``, or None if malformed."""
    I, J, E = instance.gating_weights.shape
    K = instance.model.top_k
    w = instance.gating_weights
    sim = instance.similarity
    if not isinstance(raw, list) or len(raw) != I or any(
            not isinstance(layer, list) or len(layer) != J for layer in raw):
        out.append(f"actions: must be [{I}][{J}] lists of [e, r] pairs")
        return None
    kth = np.sort(w, axis=2)[:, :, -K]
    targets = [[[] for _ in range(J)] for _ in range(I)]
    dev = np.zeros((I, J))
    for i in range(I):
        for j in range(J):
            pairs = raw[i][j]
            ok = isinstance(pairs, list) and len(pairs) == K and all(
                isinstance(p, list) and len(p) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) for x in p)
                for p in pairs)
            if not ok:
                out.append(f"actions[{i}][{j}]: must be {K} integer [e, r] pairs")
                return None
            experts = [p[0] for p in pairs]
            if len(set(experts)) != K or any(not 0 <= e < E or w[i, j, e] < kth[i, j]
                                             for e in experts):
                out.append(f"actions[{i}][{j}]: experts {experts!r} are not the token's "
                           "router Top-K")
                return None
            for e, r in pairs:
                if r == -1:
                    dev[i, j] += w[i, j, e] * sim.skip[i, e]
                elif 0 <= r < E:
                    dev[i, j] += w[i, j, e] * sim.replace[i, e, r]
                    targets[i][j].append(r)
                else:
                    out.append(f"actions[{i}][{j}]: {r!r} is neither -1 nor an expert id")
                    return None
            if len(set(targets[i][j])) != len(targets[i][j]):
                out.append(f"actions[{i}][{j}]: invokes an expert twice {targets[i][j]!r}")
    return targets, dev


def _times_and_energy(instance: Instance, targets, b: np.ndarray):
    """Layer latencies (eq. 11) and layer energies, device by device."""
    s, m = instance.system, instance.model
    I, U = instance.n_layers, instance.n_devices
    local = s.local if s.local is not None else [False] * U
    kappa = s.compute_j_per_flop if s.compute_j_per_flop is not None else np.zeros(U)
    layer_s, layer_e = np.zeros(I), np.zeros(I)
    for i in range(I):
        g_down = s.gain_down[i] if s.gain_down.ndim == 2 else s.gain_down
        g_up = s.gain_up[i] if s.gain_up.ndim == 2 else s.gain_up
        for k in range(U):
            pairs = sum(1 for token in targets[i] for r in token
                        if instance.placement[i, r] == k)
            tokens = sum(1 for token in targets[i]
                         if any(instance.placement[i, r] == k for r in token))
            if pairs == 0:
                continue
            comm_t = comm_e = 0.0
            if not local[k]:
                if b[k] <= 0:
                    comm_t = comm_e = math.inf
                else:
                    r_down = b[k] * math.log2(1 + s.bs_power_w * g_down[k]
                                              / (s.noise_psd_w_per_hz * b[k]))
                    r_up = b[k] * math.log2(1 + s.tx_power_w[k] * g_up[k]
                                            / (s.noise_psd_w_per_hz * b[k]))
                    comm_t = m.token_bits / r_down + m.token_bits / r_up
                    comm_e = (s.bs_power_w * m.token_bits / r_down
                              + s.tx_power_w[k] * m.token_bits / r_up)
            t = tokens * comm_t + pairs * m.token_flops / s.compute_flops[k]
            layer_s[i] = max(layer_s[i], t)
            layer_e[i] += tokens * comm_e + pairs * m.token_flops * kappa[k]
    return layer_s, layer_e
