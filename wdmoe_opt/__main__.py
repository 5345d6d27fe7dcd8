"""``python -m wdmoe_opt``: the same command line as ``wdmoe-opt``."""

from .cli import main

main()
