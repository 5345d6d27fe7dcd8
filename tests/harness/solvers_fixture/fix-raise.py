"""Test fixture: a solver that raises (the harness records an error row)."""

from wdmoe_opt.harness import Custom


def solve(instance):
    raise RuntimeError("deliberate failure")


SOLVER = Custom(name="fix-raise", problem="p3", function=solve)
