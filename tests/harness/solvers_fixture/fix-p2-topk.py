"""Test fixture: P2 router Top-K (a method that exists)."""

from wdmoe_opt.harness import Config

SOLVER = Config(name="fix-p2-topk", problem="p2", method="p2/topk")
