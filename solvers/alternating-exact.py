"""P1 alternating P2 (MILP) and P3 (exact) until the selection repeats."""

from wdmoe_opt.harness import Config

SOLVER = Config(
    name="alternating-exact", problem="p1", method="p1/alternating",
    options={"selection": "milp", "bandwidth": "exact"},
    description=__doc__,
)
