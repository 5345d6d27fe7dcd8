"""Problem P4 (SiftMoE, SPEC §6): energy-minimizing, similarity-aware expert
selection; :mod:`wdmoe_opt.builtin` registers the ``p4/`` methods."""

from .problem import EnergyProblem, layer_budgets

__all__ = ["EnergyProblem", "layer_budgets"]
