"""Placement decided on training batches, scored on held-out ones; and the joint
placement + selection + bandwidth problem (SPEC §7), by alternation.

Held-out scoring (:func:`heldout_latency`): for every held-out batch, the
selection policy runs under the placement (a P2 method at the uniform split, as
the paper's BS does), then ``p3/exact`` allocates the bandwidth; the score is the
mean batch latency. Nothing of the held-out batches is seen by the placement.

The alternation (:func:`alternate`) starts at the paper's WDMoE on round-robin
(Algorithm 1 at the uniform split, then P3) and repeats

* **P5**: ``p5/local-search`` from the current placement and from ``greedy``, the
  better of the two, for the current selection of the training batches (held
  fixed), P3 inside;
* **P2**: the selection policy re-run under the new placement;
* **P3**: exact bandwidth per batch (inside every score);

until a round lowers the training objective by less than ``tol`` (relative).
:func:`stage_shares` splits the held-out gain over WDMoE into the placement's
share (new placement, the selection WDMoE would make) and the re-selection's
share (the selection re-made under the new placement); P3 is in every point, and
its own effect at the final point is reported beside them (exact vs uniform).
"""

from __future__ import annotations

import numpy as np

from ..model import Instance, Selection
from ..problems import BandwidthProblem, SelectionProblem
from ..registry import get_method
from .evaluate import PlacementEvaluator
from .heuristics import greedy, round_robin
from .local_search import LocalSearchOptions, local_search
from .problem import PlacementProblem, split_batches


def policy_selection(problem: PlacementProblem, placement: np.ndarray,
                     selection: str) -> Selection:
    """``[I, J, E]``: the P2 method ``selection`` run batch by batch under ``placement``
    at the uniform split."""
    method = get_method(selection, "p2")
    masks = [method(SelectionProblem(problem.batch_instance(n, placement))).selection.mask
             for n in range(problem.n_batches)]
    return Selection(np.concatenate(masks, axis=1))


def heldout_latency(problem: PlacementProblem, placement: np.ndarray,
                    selection: str = "topk", bandwidth: str = "exact",
                    selection_placement: np.ndarray | None = None) -> float:
    """Mean batch latency (s) of ``problem``'s batches (held out from training) under
    ``placement``: the P2 method ``selection`` per batch at the uniform split (under
    ``selection_placement`` if given, else ``placement``), then the P3 method."""
    sel_pl = placement if selection_placement is None else selection_placement
    q = policy_selection(problem, sel_pl, selection).mask
    p3 = get_method(bandwidth, "p3")
    jb = problem.batch_tokens
    return float(np.mean([
        p3(BandwidthProblem(problem.batch_instance(n, placement),
                            Selection(q[:, n * jb:(n + 1) * jb]))).objective_s
        for n in range(problem.n_batches)]))


def alternate(train: PlacementProblem, selection: str = "alg1", max_rounds: int = 5,
              tol: float = 1e-4, search: LocalSearchOptions | None = None) -> dict:
    """Alternate P5 (local search), P2 (``selection``) and P3 on the training batches.

    Returns ``placement`` (the best), ``history`` (one row per stage: round, stage,
    training objective in s) and the training objectives of the start (WDMoE on
    round-robin) and the end.
    """
    search = search or LocalSearchOptions()
    pl = round_robin(train)
    q = policy_selection(train, pl, selection)

    def score(placement, sel):
        return PlacementEvaluator(PlacementProblem(
            train.instance, train.batch_tokens, train.capacity, sel)).score(placement)

    best = score(pl, q)
    history = [{"round": 0, "stage": "wdmoe", "objective_s": best}]
    for r in range(1, max_rounds + 1):
        fixed = PlacementProblem(train.instance, train.batch_tokens, train.capacity, q)
        ev = PlacementEvaluator(fixed)
        new_pl = min((local_search(fixed, start, search, ev)[0]
                      for start in (pl, greedy(fixed, ev)[0])), key=ev.score)
        after_p5 = ev.score(new_pl)
        history.append({"round": r, "stage": "p5", "objective_s": after_p5})
        new_q = policy_selection(train, new_pl, selection)
        after_p2 = score(new_pl, new_q)
        history.append({"round": r, "stage": "p2", "objective_s": after_p2})
        if after_p2 <= after_p5:
            pl, q, value = new_pl, new_q, after_p2
        else:                          # the policy's re-selection did not pay: keep q
            pl, value = new_pl, after_p5
        if value > best * (1 - tol):
            best = min(best, value)
            break
        best = value
    return {"placement": pl, "history": history, "start_objective_s": history[0]["objective_s"],
            "objective_s": best}


def stage_shares(test: PlacementProblem, start: np.ndarray, final: np.ndarray,
                 selection: str = "alg1") -> dict:
    """The held-out gain of ``final`` over WDMoE on ``start``, split by stage.

    ``wdmoe``: ``start``, ``selection`` under ``start``, P3. ``placement``: ``final``,
    the same selection policy run under ``start`` (what WDMoE would select), P3.
    ``joint``: ``final``, the selection under ``final``, P3. ``joint_uniform``: as
    ``joint`` with the uniform split instead of P3. Shares are fractions of
    ``wdmoe - joint``.
    """
    wdmoe = heldout_latency(test, start, selection)
    placed = heldout_latency(test, final, selection, selection_placement=start)
    joint = heldout_latency(test, final, selection)
    uniform = heldout_latency(test, final, selection, bandwidth="uniform")
    gain = wdmoe - joint
    return {"wdmoe_s": wdmoe, "placement_s": placed, "joint_s": joint,
            "joint_uniform_s": uniform,
            "p5_share": (wdmoe - placed) / gain if gain else None,
            "p2_share": (placed - joint) / gain if gain else None,
            "p3_saving_at_final": 1 - joint / uniform if uniform else None}


def split_trace(instance: Instance, batch_tokens: int, train_batches: int,
                capacity=None) -> tuple[PlacementProblem, PlacementProblem]:
    """The first ``train_batches`` batches for training, the rest held out."""
    n = instance.n_tokens // batch_tokens
    return (PlacementProblem(split_batches(instance, batch_tokens, 0, train_batches),
                             batch_tokens, capacity),
            PlacementProblem(split_batches(instance, batch_tokens, train_batches,
                                           n - train_batches), batch_tokens, capacity))
