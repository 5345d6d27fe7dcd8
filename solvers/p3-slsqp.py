"""P3 on the router's Top-K selection: SciPy SLSQP on the epigraph form."""

from wdmoe_opt.harness import Config

SOLVER = Config(
    name="p3-slsqp", problem="p3", method="p3/slsqp",
    options={},
    description=__doc__,
)
