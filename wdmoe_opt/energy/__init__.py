"""Problem P4 (SiftMoE, SPEC §6): energy-minimizing, similarity-aware expert
selection. Importing registers the ``p4/`` methods."""

from . import bandwidth, baselines, exact, fading, relax  # noqa: F401
from .problem import EnergyProblem, layer_budgets

__all__ = ["EnergyProblem", "layer_budgets"]
