"""Test fixture: a solver that never finishes in time (the harness must kill it)."""

import time

from wdmoe_opt.harness import Custom


def solve(instance):
    time.sleep(600)


SOLVER = Custom(name="fix-slow", problem="p3", function=solve)
