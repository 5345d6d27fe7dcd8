"""P1 joint (bilevel) methods (eqs. 13-15). Importing registers them."""

from . import alternating, exact, sequential, weight_floor  # noqa: F401
