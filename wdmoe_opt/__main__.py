"""``python -m wdmoe_opt``: the same command line as ``wdmoe-opt``."""

from .cli import main

if __name__ == "__main__":     # p2/exact's worker processes re-import this module
    main()
