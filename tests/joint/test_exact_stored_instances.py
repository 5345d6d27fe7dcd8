"""p1/exact on the stored tiny instances of ``instances/``, refereed by the independent
brute force of :mod:`tests.reference` (slow: the coupled search takes seconds to minutes
of CPU on these, see docs/joint.md)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests import reference as ref
from wdmoe_opt import JointProblem, solve
from wdmoe_opt.io import read_instance

#: The stored tiny instances on two or three devices (the reference P3 search, nested
#: golden sections, covers no more; the four-device ones are left to the harness).
TINY = {p.stem: read_instance(p)
        for p in sorted((Path(__file__).parents[2] / "instances" / "tiny").glob("*.json"))}
TINY = {name: inst for name, inst in TINY.items() if inst.n_devices <= 3}
#: p1/exact's stated gap under the coupled reading; the referee's own accuracy.
COUPLED_GAP, REF_RTOL = 1e-4, 1e-7


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY))
def test_uniform_reading_equals_the_brute_force(name):
    instance = TINY[name]
    sol = solve(JointProblem(instance, lower_level="uniform"), "exact")
    assert str(sol.status) == "optimal"
    assert math.isclose(sol.objective_s, ref.p1_uniform_optimum_s(instance), rel_tol=REF_RTOL)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY))
def test_coupled_reading_is_proven_and_beats_every_feasible_grid_point(name):
    instance = TINY[name]
    sol = solve(JointProblem(instance, lower_level="coupled"), "exact")
    assert str(sol.status) == "optimal" and sol.gap <= COUPLED_GAP
    ref.assert_bilevel_verdict(instance, sol, REF_RTOL)
    assert sol.extra["bilevel_feasible"] is True
    for b in ref.simplex_grid_hz(instance, 12 if instance.n_devices == 3 else 30):
        feasible = ref.coupled_point_latency_s(instance, b)
        assert sol.lower_bound_s <= feasible * (1 + REF_RTOL)
        assert sol.objective_s <= feasible * (1 + COUPLED_GAP)
