"""Test fixture: a configuration whose method is not registered."""

from wdmoe_opt.harness import Config

SOLVER = Config(name="fix-missing", problem="p2", method="p2/not-registered")
