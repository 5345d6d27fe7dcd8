"""Test fixture: P3 uniform split on the Top-K selection (a method that exists)."""

from wdmoe_opt.harness import Config

SOLVER = Config(name="fix-p3-uniform", problem="p3", method="p3/uniform")
