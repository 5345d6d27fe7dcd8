"""P2 at the uniform split: Algorithm 2 (paper, testbed), cold start."""

from wdmoe_opt.harness import Config

SOLVER = Config(
    name="p2-alg2", problem="p2", method="p2/alg2",
    options={},
    description=__doc__,
)
