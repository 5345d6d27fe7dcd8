"""P2 at the uniform split: the router's Top-K (the WLR baseline)."""

from wdmoe_opt.harness import Config

SOLVER = Config(
    name="p2-topk", problem="p2", method="p2/topk",
    options={},
    description=__doc__,
)
