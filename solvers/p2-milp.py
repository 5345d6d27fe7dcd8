"""P2 at the uniform split, exact: the MILP of the linearized sum of ratios."""

from wdmoe_opt.harness import Config

SOLVER = Config(
    name="p2-milp", problem="p2", method="p2/milp",
    options={},
    description=__doc__,
)
