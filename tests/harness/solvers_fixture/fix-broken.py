"""Test fixture: a solver file that does not define SOLVER."""

NOT_A_SOLVER = 1
