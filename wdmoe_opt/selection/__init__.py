"""P2 expert selection methods (eqs. 15-17). Importing registers them."""

from . import topk  # noqa: F401
