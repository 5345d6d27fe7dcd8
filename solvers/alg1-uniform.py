"""P1 ablation 'w/o bandwidth allocation': Algorithm 1 selection, uniform split."""

from wdmoe_opt.harness import Config

SOLVER = Config(
    name="alg1-uniform", problem="p1", method="p1/sequential",
    options={"selection": "alg1", "bandwidth": "uniform"},
    description=__doc__,
)
