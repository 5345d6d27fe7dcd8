"""P1, uniform lower level, exact: MILP-optimal P2 at the uniform split, then P3 exact."""

from wdmoe_opt.harness import Config

SOLVER = Config(
    name="milp-exact", problem="p1", method="p1/sequential",
    options={"selection": "milp", "bandwidth": "exact"},
    description=__doc__,
)
