"""P1 ablation 'w/o expert selection': router Top-K, optimal bandwidth (P3 exact)."""

from wdmoe_opt.harness import Config

SOLVER = Config(
    name="topk-exact", problem="p1", method="p1/sequential",
    options={"selection": "topk", "bandwidth": "exact"},
    description=__doc__,
)
