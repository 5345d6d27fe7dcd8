"""P3 on the router's Top-K selection: CVXPY conic model with a dual bound."""

from wdmoe_opt.harness import Config

SOLVER = Config(
    name="p3-cvxpy", problem="p3", method="p3/cvxpy",
    options={},
    description=__doc__,
)
