"""``p2/alg1``: the paper's Algorithm 1 (expert selection by cosine similarity, eq. 18).

As SPEC §3 resolves it: start from the router's Top-K with ``theta = theta0``; while
the total WLR (eq. 12) is below ``gain`` times its Top-K value, drop the lowest-weight
kept expert of every token whose similarity ``S_j`` passes the threshold and that
still keeps >= 2 experts, then ``theta += step``. Then one final pass (lines 11-12)
with the last ``theta``. Guards the paper lacks: stop when nothing is droppable or
``theta > 1 + step``; a token never loses its last expert.

``S_j = cos(w_j, tau)`` with ``tau[e]`` the per-token latency ``c + a`` of expert
``e``'s device at the problem's bandwidth (the uniform split by default, as the
paper). Dropping sets the expert's weight to zero (paper §IV-A), so ``S_j`` is
recomputed on the weights with dropped experts zeroed (line 11 "recalculate").

Variants (``direction``): ``below`` (default, the paper's text) drops tokens with
``S_j < theta``; ``above`` is the mirror reading, dropping tokens with
``S_j > 1 - theta`` (so a growing ``theta`` again drops more). docs/selection.md
gives the measurement that settles which reproduces the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..options import Options, option
from ..problems import SelectionProblem
from ..registry import register
from ..solution import Solution, Status
from .common import LayerTimes, RankedSelection, check_selection, check_top_k


@dataclass(frozen=True)
class Alg1Options(Options):
    """Knobs of Algorithm 1 (paper defaults)."""

    theta0: float = option(0.5, "unit", "initial similarity threshold (line 1)")
    step: float = option(0.1, "positive", "threshold increment per round (line 9)")
    gain: float = option(1.01, "positive", "stop once total WLR >= gain x Top-K WLR (line 4)")
    top_k: int | None = option(None, "optional_positive_int",
                               "experts kept before dropping (None: the instance's K)")
    direction: str = option("below", ("below", "above"),
                            "drop when S < theta (paper) or S > 1 - theta (mirror)")


def _cosine(dot: np.ndarray, sq_norm: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Eq. (18), ``cos(w[i, j, :], tau[i, :])`` ``[I, J]``, from the dot products and the
    squared norms of the weight rows (0 for an all-zero row)."""
    norm = np.sqrt(sq_norm) * np.linalg.norm(tau, axis=1)[:, None]
    return np.divide(dot, norm, out=np.zeros_like(dot), where=norm > 0)


def algorithm1(times: LayerTimes, options: Alg1Options) -> tuple[RankedSelection, dict]:
    """Run Algorithm 1 on every token of every layer at once; ``(selection, trace)``.

    The similarity (eq. 18) is kept up to date incrementally: a drop zeroes one
    weight, so it changes one dot product and one squared norm.
    """
    inst = times.instance
    k = inst.model.top_k if options.top_k is None else options.top_k
    sel = RankedSelection(times, k)
    tau = np.where(np.isfinite(times.tau_expert), times.tau_expert, 0.0)
    w = inst.gating_weights
    dot = np.einsum("ije,ie->ij", w, tau)
    sq = np.einsum("ije,ije->ij", w, w)
    target = options.gain * sel.wlr().sum()
    theta, rounds = options.theta0, 0

    def one_pass(th: float) -> int:
        s = _cosine(dot, sq, tau)
        i, j, e, wd = sel.drop(s < th if options.direction == "below" else s > 1.0 - th)
        dot[i, j] -= wd * tau[i, e]
        sq[i, j] -= wd ** 2
        return len(i)

    while sel.wlr().sum() < target and theta <= 1.0 + options.step and sel.droppable().any():
        one_pass(theta)
        theta += options.step
        rounds += 1
    final_drops = one_pass(theta)
    return sel, {"rounds": rounds, "final_theta": theta, "final_pass_drops": final_drops,
                 "wlr_target": float(target)}


@register("p2", "alg1", options=Alg1Options)
def solve_alg1(problem: SelectionProblem, options: Alg1Options) -> Solution:
    """Algorithm 1 (paper §IV-A): drop low-similarity tokens' second expert until WLR gains."""
    check_top_k(problem, options.top_k, "p2/alg1")
    sel, trace = algorithm1(LayerTimes(problem), options)
    mask = sel.mask()
    return Solution.evaluate(problem.instance, check_selection(problem, mask),
                             problem.bandwidth_hz, problem="p2", method="p2/alg1",
                             status=Status.FEASIBLE, extra=trace)
