"""P3 bandwidth allocation methods (eqs. 19-21). Importing registers them."""

from . import conic, exact, robust, slsqp, uniform  # noqa: F401
