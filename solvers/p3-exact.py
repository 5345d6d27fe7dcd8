"""P3 on the router's Top-K selection: the exact method, with a lower bound."""

from wdmoe_opt.harness import Config

SOLVER = Config(
    name="p3-exact", problem="p3", method="p3/exact",
    options={},
    description=__doc__,
)
