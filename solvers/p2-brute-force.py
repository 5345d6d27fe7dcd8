"""P2 at the uniform split, exact by enumeration (tiny instances only)."""

from wdmoe_opt.harness import Config

SOLVER = Config(
    name="p2-brute-force", problem="p2", method="p2/brute-force",
    options={},
    description=__doc__,
)
