"""The formulations as problem objects (SPEC §2).

A method of problem ``pX`` is called as ``solve(problem, options) -> Solution``;
the problem object carries the data, the options carry the method's knobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .errors import InputError
from .model import Instance, Selection, uniform_bandwidth_hz

Support = Literal["topk", "all"]
LowerLevel = Literal["uniform", "coupled"]
SUPPORTS = ("topk", "all")
LOWER_LEVELS = ("uniform", "coupled")

#: Relative tolerance on ``sum_k B_k = B`` (eq. 20) used by every check.
BANDWIDTH_SUM_RTOL = 1e-6


def check_bandwidth(instance: Instance, bandwidth_hz, field: str = "bandwidth_hz") -> np.ndarray:
    """Validate eqs. (20)-(21): ``B_k >= 0`` and ``sum_k B_k = B``; return a float array."""
    b = np.asarray(bandwidth_hz, dtype=np.float64)
    U, total = instance.n_devices, instance.system.total_bandwidth_hz
    if b.shape != (U,):
        raise InputError(field, f"must have one value per device ({U})", b.shape)
    if not np.isfinite(b).all() or (b < 0).any():
        k = int(np.argmax(~np.isfinite(b) | (b < 0)))
        raise InputError(f"{field}[{k}]", "must be a finite non-negative number", float(b[k]))
    if abs(b.sum() - total) > BANDWIDTH_SUM_RTOL * total:
        raise InputError(field, f"must sum to the total bandwidth {total:g} Hz", float(b.sum()))
    return b


def _check_choice(value, allowed, field):
    if value not in allowed:
        raise InputError(field, f"must be one of {', '.join(allowed)}", value)


def refuse_replicas(instance: Instance, problem_key: str) -> None:
    """The selection problems (P1, P2, P4) read one copy per expert: an instance with
    replicated experts (SPEC §7) is refused, not silently solved on its primaries."""
    if instance.replicas is not None:
        raise InputError("replicas", f"are not modelled by {problem_key}, whose selection "
                         "reads one copy per expert: solve it as p3 under the router's "
                         "Top-K or a given selection, or as p5", "replicated experts")


@dataclass(frozen=True, eq=False)
class BandwidthProblem:
    """P3 (eqs. 19-21): allocate bandwidth for a fixed selection."""

    instance: Instance
    selection: Selection
    key = "p3"

    def __post_init__(self):
        I, J, E = self.instance.gating_weights.shape
        if self.selection.shape != (I, J, E):
            raise InputError("selection", f"must have shape [{I}][{J}][{E}]",
                             self.selection.shape)
        empty = ~self.selection.mask.any(axis=2)
        if empty.any():
            i, j = np.argwhere(empty)[0]
            raise InputError(f"selection[{i}][{j}]", "keeps no expert (eq. 16: every token "
                             "keeps at least one)")


@dataclass(frozen=True, eq=False)
class SelectionProblem:
    """P2 (eqs. 15-17): maximize total WLR at a fixed bandwidth.

    ``support="topk"`` keeps a subset of each token's router Top-K;
    ``support="all"`` is the literal P2 (any non-empty subset of experts).
    ``bandwidth_hz`` defaults to the uniform split, as the paper uses.
    """

    instance: Instance
    bandwidth_hz: np.ndarray | None = None
    support: Support = "topk"
    key = "p2"

    def __post_init__(self):
        _check_choice(self.support, SUPPORTS, "support")
        refuse_replicas(self.instance, self.key)
        b = (uniform_bandwidth_hz(self.instance) if self.bandwidth_hz is None
             else check_bandwidth(self.instance, self.bandwidth_hz))
        b = np.array(b, copy=True)
        b.setflags(write=False)
        object.__setattr__(self, "bandwidth_hz", b)

    def allowed_mask(self) -> np.ndarray:
        """``[I, J, E]``: the experts each token may keep under ``support``."""
        if self.support == "all":
            return np.ones(self.instance.gating_weights.shape, dtype=bool)
        return Selection.topk(self.instance).mask


@dataclass(frozen=True, eq=False)
class JointProblem:
    """P1 (eqs. 13-15): bilevel; ``lower_level`` says how P2 sees the bandwidth.

    ``uniform``: the follower scores WLR at the uniform split (the paper's practice);
    ``coupled``: the follower scores WLR at the leader's bandwidth (eqs. 13-15 literally).
    """

    instance: Instance
    support: Support = "topk"
    lower_level: LowerLevel = "uniform"
    key = "p1"

    def __post_init__(self):
        _check_choice(self.support, SUPPORTS, "support")
        _check_choice(self.lower_level, LOWER_LEVELS, "lower_level")
        refuse_replicas(self.instance, self.key)


@dataclass(frozen=True, eq=False)
class WeightFloorProblem:
    """Minimum latency under a retained-weight floor (a single-level alternative to P1):

    ``min_{q, B} T(q, B)`` (eqs. 10-13) s.t. ``retained_weight(q) >= min_retained_weight``
    (SPEC §1's accuracy proxy), eqs. 16-17 and 20-21. Sweeping the floor traces the
    latency-accuracy trade-off.
    """

    instance: Instance
    min_retained_weight: float = 0.9
    support: Support = "topk"
    key = "p1-floor"

    def __post_init__(self):
        _check_choice(self.support, SUPPORTS, "support")
        refuse_replicas(self.instance, self.key)
        rho = self.min_retained_weight
        if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not 0 <= rho <= 1:
            raise InputError("min_retained_weight", "must be a number in [0, 1]", rho)


Problem = BandwidthProblem | SelectionProblem | JointProblem | WeightFloorProblem
