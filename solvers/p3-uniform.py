"""P3 on the router's Top-K selection: the uniform split B/U."""

from wdmoe_opt.harness import Config

SOLVER = Config(
    name="p3-uniform", problem="p3", method="p3/uniform",
    options={},
    description=__doc__,
)
