"""P2 expert selection methods (eqs. 15-17); :mod:`wdmoe_opt.builtin` registers them."""

from .alg2 import Alg2Policy

__all__ = ["Alg2Policy"]
