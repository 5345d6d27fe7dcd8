"""P5, expert placement (SPEC §7): problem, evaluator and the ``p5/*`` methods
(registered through :mod:`wdmoe_opt.builtin`)."""

from .problem import REPLICATING, PlacementProblem, concat_batches, split_batches

__all__ = ["REPLICATING", "PlacementProblem", "concat_batches", "split_batches"]
