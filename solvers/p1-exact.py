"""P1 optimistic bilevel optimum (tiny instances only), the ground truth."""

from wdmoe_opt.harness import Config

SOLVER = Config(
    name="p1-exact", problem="p1", method="p1/exact",
    options={},
    description=__doc__,
)
