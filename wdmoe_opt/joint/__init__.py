"""P1 joint (bilevel) methods (eqs. 13-15). Importing registers them."""

from . import sequential  # noqa: F401
