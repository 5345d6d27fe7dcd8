"""``p2/brute-force``: enumerate every feasible selection of tiny instances (ground truth).

Per layer (P2 separates by layer), every token picks a non-empty subset of its
allowed experts; all combinations are scored at once with the batched WLR
evaluator (eq. 12), in chunks. Ties go to the first combination in enumeration
order. Any placement works (``u`` and ``p`` are counted as eqs. 9-10 say).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..options import Options, option
from ..problems import SelectionProblem
from ..registry import register
from ..solution import Solution, Status
from .common import LayerTimes, check_selection, refuse_large


@dataclass(frozen=True)
class BruteForceOptions(Options):
    """Size guard of the enumeration."""

    max_combinations: int = option(200_000, "positive_int",
                                   "refuse a layer with more feasible selections than this")
    chunk: int = option(4096, "positive_int", "combinations scored per batch")


def subsets(allowed: np.ndarray) -> np.ndarray:
    """``[n, E]``: every non-empty subset of the experts in the ``[E]`` mask ``allowed``."""
    ids = np.flatnonzero(allowed)
    bits = (np.arange(1, 2 ** len(ids))[:, None] >> np.arange(len(ids))) & 1
    out = np.zeros((len(bits), len(allowed)), dtype=bool)
    out[:, ids] = bits.astype(bool)
    return out


def best_layer(times: LayerTimes, allowed: np.ndarray, i: int,
               options: BruteForceOptions) -> tuple[np.ndarray, float]:
    """Layer ``i``'s optimal ``[J, E]`` mask and its WLR, by enumeration."""
    choices = [subsets(a) for a in allowed[i]]
    sizes = np.array([len(c) for c in choices])
    refuse_large("instance", sizes, options.max_combinations,
                 f"p2/brute-force: feasible selections of layer {i} vs max_combinations; "
                 "use p2/milp")
    total = int(np.prod(sizes))
    radix = np.cumprod(np.r_[1, sizes[:-1]])
    best_val, best_mask = -np.inf, None
    for lo in range(0, total, options.chunk):
        idx = np.arange(lo, min(lo + options.chunk, total))
        pick = (idx[:, None] // radix) % sizes                        # [C, J]
        masks = np.stack([choices[j][pick[:, j]] for j in range(len(choices))], axis=1)
        vals = times.wlr(masks[:, None], layers=slice(i, i + 1)).sum(axis=(-1, -2))
        c = int(np.argmax(vals))
        if vals[c] > best_val:
            best_val, best_mask = float(vals[c]), masks[c]
    return best_mask, best_val


@register("p2", "brute-force", options=BruteForceOptions, exact=True)
def solve_brute_force(problem: SelectionProblem, options: BruteForceOptions) -> Solution:
    """Exact P2 on tiny instances by enumerating every feasible selection, layer by layer."""
    times, allowed = LayerTimes(problem), problem.allowed_mask()
    results = [best_layer(times, allowed, i, options) for i in range(allowed.shape[0])]
    mask = np.stack([m for m, _ in results])
    return Solution.evaluate(problem.instance, check_selection(problem, mask),
                             problem.bandwidth_hz, problem="p2", method="p2/brute-force",
                             status=Status.OPTIMAL, tolerance=0.0,
                             wlr_upper_bound=sum(v for _, v in results))
