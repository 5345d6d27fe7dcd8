"""Is a point ``(B, q)`` bilevel-feasible for P1 (eqs. 13-15)?

It is when ``q`` is optimal for P2 (eqs. 15-17) at the bandwidth the follower
sees: the uniform split under the ``uniform`` reading, the leader's ``B`` under
``coupled`` (SPEC §2). The verdict is three-valued: ``True`` when an exact P2
method proves it, ``False`` when any P2 method finds a selection with a larger
WLR, ``None`` when a heuristic found nothing better (unknown).
"""

from __future__ import annotations

import numpy as np

from ..model import Selection, uniform_bandwidth_hz
from ..model import latency as lat
from ..problems import JointProblem, SelectionProblem
from ..registry import Step, get_method
from ..solution import Solution, Status
from .enumerate import TIE_TOL


def follower_bandwidth(problem: JointProblem, bandwidth_hz) -> np.ndarray:
    """The bandwidth at which the follower scores WLR (eq. 12) under the problem's reading."""
    if problem.lower_level == "uniform":
        return uniform_bandwidth_hz(problem.instance)
    return np.asarray(bandwidth_hz, dtype=np.float64)


def judge(problem: JointProblem, selection: Selection, reply: Solution,
          tie_tol: float = TIE_TOL) -> bool | None:
    """The verdict on ``selection`` given ``reply``, a P2 solution at the follower's
    bandwidth (``reply.bandwidth_hz``).

    When ``selection`` is the reply's own, its status decides (an exact method's
    ``optimal`` proves it); otherwise the two WLR values are compared.
    """
    proven = get_method(reply.method).exact and reply.status == Status.OPTIMAL
    if selection is reply.selection:
        return True if proven else None
    own = float(lat.wlr(problem.instance, selection, reply.bandwidth_hz).sum())
    if reply.wlr_total > own * (1.0 + tie_tol):
        return False
    return True if proven else None


def bilevel_feasible(problem: JointProblem, selection: Selection, bandwidth_hz,
                     p2_step: Step, tie_tol: float = TIE_TOL) -> bool | None:
    """Solve P2 at the follower's bandwidth with ``p2_step`` and :func:`judge`."""
    p2 = SelectionProblem(problem.instance, follower_bandwidth(problem, bandwidth_hz),
                          support=problem.support)
    return judge(problem, selection, p2_step.solve(p2), tie_tol)
