"""P2 at the uniform split, literal (support 'all': any subset of experts), exact MILP."""

from wdmoe_opt.harness import Config

SOLVER = Config(
    name="p2-milp-all", problem="p2", method="p2/milp", support="all",
    description=__doc__,
)
