"""P3 bandwidth allocation methods (eqs. 19-21). Importing registers them."""

from . import exact, uniform  # noqa: F401
