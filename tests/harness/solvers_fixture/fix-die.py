"""Test fixture: a solver whose process dies without a word (a hard crash)."""

import os

from wdmoe_opt.harness import Custom


def solve(instance):
    os._exit(3)


SOLVER = Custom(name="fix-die", problem="p3", function=solve)
