"""P2 expert selection methods (eqs. 15-17). Importing registers them."""

from . import alg1, alg2, brute_force, exact, milp, milp_pyomo, topk  # noqa: F401
from .alg2 import Alg2Policy

__all__ = ["Alg2Policy"]
