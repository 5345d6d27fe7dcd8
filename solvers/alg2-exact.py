"""P1 with the testbed's Algorithm 2 selection (cold start), then P3 exact."""

from wdmoe_opt.harness import Config

SOLVER = Config(
    name="alg2-exact", problem="p1", method="p1/sequential",
    options={"selection": "alg2", "bandwidth": "exact"},
    description=__doc__,
)
