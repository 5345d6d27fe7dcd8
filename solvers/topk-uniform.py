"""P1, the paper's Mixtral-based baseline: router Top-K, uniform bandwidth split."""

from wdmoe_opt.harness import Config

SOLVER = Config(
    name="topk-uniform", problem="p1", method="p1/sequential",
    options={"selection": "topk", "bandwidth": "uniform"},
    description=__doc__,
)
