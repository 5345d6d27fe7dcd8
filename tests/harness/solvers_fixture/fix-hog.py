"""Test fixture: a solver that asks for far more memory than the limit allows."""

import numpy as np

from wdmoe_opt.harness import Custom


def solve(instance):
    return np.ones(2**40)


SOLVER = Custom(name="fix-hog", problem="p3", function=solve)
