"""P1, the paper's WDMoE: Algorithm 1 selection, then optimal bandwidth (P3 exact)."""

from wdmoe_opt.harness import Config

SOLVER = Config(
    name="alg1-exact", problem="p1", method="p1/sequential",
    options={"selection": "alg1", "bandwidth": "exact"},
    description=__doc__,
)
