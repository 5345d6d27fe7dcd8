"""Table II: the paper's ablations on the calibrated ``wdmoe-sim`` preset.

    python benchmarks/table2_ablation.py                 # 8 seeds, paper size (1024 tokens)
    python benchmarks/table2_ablation.py --seeds 3 --tokens 256

Writes ``docs/results/table2.md`` (summary with the command) and ``table2.csv``
(one row per seed and variant); a thin wrapper over ``wdmoe-opt ablation``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from wdmoe_opt.cli import main

OUT = Path("docs/results/table2.md")  # run from the repository root


def run(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=None)
    ap.add_argument("--bandwidth", default="exact", help="P3 method (exact or slsqp)")
    ap.add_argument("-o", "--output", type=Path, default=OUT)
    args = ap.parse_args(argv)
    cli = ["ablation", "--seeds", str(args.seeds), "--bandwidth", args.bandwidth,
           "-o", str(args.output)]
    return main(cli + (["--tokens", str(args.tokens)] if args.tokens else []))


if __name__ == "__main__":
    raise SystemExit(run())
