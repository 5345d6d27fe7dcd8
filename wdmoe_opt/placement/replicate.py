"""Replication search of ``p5/local-search`` (``max_replicas > 1``): add and drop copies.

From a placement (one copy per expert, the primary, kept fixed), a pass visits
the layers and, in layer ``i``, scores

* *add a copy*: an expert hosted (any copy) by a bottleneck device of the layer
  (eq. 11's maximum in some batch at that batch's optimal bandwidth; every expert
  when the layer is small) gets one more copy on a target device with room (the
  devices in use and the ``targets`` fastest unused ones), if it has fewer than
  ``max_replicas``;
* *mirror a device*: every expert whose primary is on a bottleneck device ``k``
  gets a copy on target ``t`` (room permitting): under the split rule the tokens
  of ``k``'s group then go whole to ``k`` or to ``t``, each crossing one link
  (a single added copy would split a token's pairs over two devices);
* *drop a copy*: any non-primary copy of the layer is removed;

and applies the best improving one. After each pass, the same adds and mirrors
*in every layer at once* are scored (the bandwidth is shared by the layers, so a
device worth adding is worth adding everywhere).
Every candidate is scored exactly: the changed layer's loads are re-routed by the
split rule (:mod:`wdmoe_opt.model.replicas`) and P3 is solved for every training
batch (:class:`~wdmoe_opt.placement.evaluate.PlacementEvaluator`). Each copy uses
capacity on its device. The search never returns a worse point than its start.
"""

from __future__ import annotations

import time

import numpy as np

from ..model.replicas import copies_per_device
from .evaluate import PlacementEvaluator, PlacementState, best_improving
from .problem import PlacementProblem


class ReplicaState(PlacementState):
    """Copies ``[I, E, R]`` (-1 padded, column 0 the placement, fixed) with their loads
    and batch latencies; ``counts`` are copies per device."""

    def __init__(self, ev: PlacementEvaluator, placement: np.ndarray, max_replicas: int):
        I, E = placement.shape
        self.ev, self.placement = ev, np.array(placement, dtype=np.int64)
        self.replicas = np.full((I, E, max_replicas), -1, dtype=np.int64)
        self.replicas[:, :, 0] = placement
        self.u, self.p = ev.loads(placement, self.replicas)
        self.latency = ev.batch_latency(self.u, self.p)
        self.counts = copies_per_device(self.replicas, ev.U)
        self._times: np.ndarray | None = None

    def try_layer(self, layer: int, row: np.ndarray) -> tuple[float, tuple]:
        """Score layer ``layer``'s copies replaced by ``row`` ``[E, R]``."""
        lu, lp = self.ev.layer_loads(row, layer)
        u, p = self.u.copy(), self.p.copy()
        u[:, layer], p[:, layer] = lu, lp
        lat = self.ev.batch_latency(u, p)
        return float(lat.mean()), (layer, row, u, p, lat)

    def try_all(self, replicas: np.ndarray) -> tuple[float, tuple]:
        """Score new copies of every layer (loads recomputed in full)."""
        u, p = self.ev.loads(replicas[:, :, 0], replicas)
        lat = self.ev.batch_latency(u, p)
        return float(lat.mean()), (None, replicas, u, p, lat)

    def commit(self, token: tuple) -> None:
        layer, row, self.u, self.p, self.latency = token
        if layer is None:
            self.replicas = row
        else:
            self.replicas[layer] = row
        self.counts = copies_per_device(self.replicas, self.ev.U)
        self._times = None


def with_copy(row: np.ndarray, e: int, device: int) -> np.ndarray | None:
    """``row`` ``[E, R]`` with one more copy of expert ``e`` on ``device`` (``None`` when
    ``e`` has ``R`` copies or ``device`` holds one)."""
    free = np.flatnonzero(row[e] < 0)
    if not free.size or (row[e] == device).any():
        return None
    new = row.copy()
    new[e, free[0]] = device
    return new


def mirrored(row: np.ndarray, k: int, device: int, room: int) -> np.ndarray | None:
    """``row`` ``[E, R]`` with a copy on ``device`` of every expert whose primary is on
    ``k`` (its group: the split rule then sends a token's pairs of the group to one
    copy), or ``None`` when that needs more than ``room`` copies or adds none."""
    new = row
    for e in np.flatnonzero(row[:, 0] == k):
        more = with_copy(new, int(e), device)
        if more is not None:
            new = more
    added = int((new >= 0).sum() - (row >= 0).sum())
    return new if 0 < added <= room else None


def layer_candidates(state: ReplicaState, layer: int, sources: np.ndarray,
                     targets: np.ndarray, capacity: np.ndarray) -> list[np.ndarray]:
    """Rows of layer ``layer``: a copy added to each expert hosted by ``sources`` on each
    target with room, each source's group mirrored on each target, and every
    non-primary copy dropped."""
    row = state.replicas[layer]
    rows = []
    room = capacity[layer] - state.counts[layer]
    for e in np.flatnonzero(np.isin(row, sources).any(axis=1)):
        for t in targets[room[targets] > 0]:
            new = with_copy(row, int(e), int(t))
            if new is not None:
                rows.append(new)
    for k in sources:
        for t in targets[targets != k]:
            new = mirrored(row, int(k), int(t), int(room[t]))
            if new is not None:
                rows.append(new)
    for e, c in np.argwhere(row[:, 1:] >= 0):
        new = row.copy()
        new[e, 1 + c:] = np.r_[row[e, 2 + c:], -1]       # drop it, keep the order
        rows.append(new)
    return rows


def all_layer_adds(state: ReplicaState, targets: np.ndarray, capacity: np.ndarray):
    """Scored copies of expert ``e`` on device ``t``, and mirrors of device ``k``'s group
    on ``t``, added in every layer where they fit."""
    I, E, _ = state.replicas.shape
    room = capacity - state.counts
    used = np.flatnonzero(state.counts.any(axis=0))
    changes = [(lambda row, i, e=e, t=t: with_copy(row, e, t) if room[i, t] > 0 else None)
               for e in range(E) for t in targets]
    changes += [(lambda row, i, k=k, t=t: mirrored(row, k, t, room[i, t]))
                for k in used for t in targets if t != k]
    for change in changes:
        new = state.replicas.copy()
        changed = False
        for i in range(I):
            row = change(new[i], i)
            if row is not None:
                new[i], changed = row, True
        if changed:
            yield state.try_all(new)


def replicate(problem: PlacementProblem, placement: np.ndarray, ev: PlacementEvaluator,
              targets: np.ndarray, *, time_limit: float, max_passes: int,
              full_neighbourhood: int) -> tuple[np.ndarray, dict]:
    """Add and drop copies of ``placement``'s experts (module docstring);
    ``(replicas [I, E, R], trace)``."""
    clock = time.perf_counter()
    state = ReplicaState(ev, placement, problem.max_replicas)
    start = state.objective
    cap = problem.capacity
    scored = accepted = passes = 0
    stop = "local optimum"
    for _ in range(max_passes):
        passes += 1
        improved = False
        for layer in range(placement.shape[0]):
            hosts = np.unique(state.replicas[layer][state.replicas[layer] >= 0])
            small = hosts.size * (hosts.size + targets.size) <= full_neighbourhood
            sources = hosts if small else state.bottlenecks(layer)
            n, token = best_improving(state, (state.try_layer(layer, row) for row in
                                    layer_candidates(state, layer, sources, targets, cap)))
            scored += n
            if token is not None:
                state.commit(token)
                accepted += 1
                improved = True
            if time.perf_counter() - clock > time_limit:
                stop = "time limit"
                break
        if stop == "time limit":
            break
        n, token = best_improving(state, all_layer_adds(state, targets, cap))
        scored += n
        if token is not None:
            state.commit(token)
            accepted += 1
            improved = True
        if not improved:
            break
    else:
        stop = "max_passes"
    n_copies = (state.replicas >= 0).sum(axis=-1)
    R = int(n_copies.max())
    return state.replicas[:, :, :R].copy(), {
        "replication_start_objective_s": start,
        "replication_objective_s": state.objective, "replication_moves_scored": scored,
        "replication_moves_accepted": accepted, "replication_passes": passes,
        "replication_stopped": stop, "extra_copies": int((n_copies - 1).sum()),
        "replication_time_s": time.perf_counter() - clock}
