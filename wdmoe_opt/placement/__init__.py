"""P5, expert placement (SPEC §7): problem, evaluator and the ``p5/*`` methods."""

from . import heuristics, local_search, milp  # noqa: F401  (registers the methods)
from .problem import PlacementProblem, concat_batches, split_batches

__all__ = ["PlacementProblem", "concat_batches", "split_batches"]
