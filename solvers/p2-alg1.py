"""P2 at the uniform split: Algorithm 1 (paper, simulation)."""

from wdmoe_opt.harness import Config

SOLVER = Config(
    name="p2-alg1", problem="p2", method="p2/alg1",
    options={},
    description=__doc__,
)
