"""Test fixture: P1 sequential, Top-K then uniform split (methods that exist)."""

from wdmoe_opt.harness import Config

SOLVER = Config(name="fix-topk-uniform", problem="p1", method="p1/sequential",
                options={"selection": "topk", "bandwidth": "uniform"})
