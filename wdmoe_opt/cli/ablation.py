"""``wdmoe-opt ablation``: the paper's Table II ablations over several seeds."""

from __future__ import annotations

import shlex
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ..generate import PRESETS
from ..harness.ablation import PAPER_ARC_C, ablation_rows, summarize, table_cells, to_markdown
from ..io.atomic import atomic_write_text
from ._params import parse_assignments


@click.command("ablation")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default="wdmoe-sim",
              show_default=True, help="Instance generator preset.")
@click.option("--seeds", default=5, show_default=True, type=click.IntRange(1),
              help="Seeds 0..N-1, one instance each.")
@click.option("--tokens", type=click.IntRange(1), default=None,
              help="Tokens per batch J [default: the preset's].")
@click.option("--selection", default="alg1", show_default=True, help="P2 method of WDMoE.")
@click.option("--bandwidth", default="exact", show_default=True, help="P3 method of WDMoE.")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="Any other generator parameter; repeatable.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the summary as OUTPUT (.md) and OUTPUT with .csv (per-seed rows).")
def command(preset, seeds, tokens, selection, bandwidth, sets, output):
    """Run the four ablations (mixtral, no-bandwidth, no-selection, wdmoe) and print
    latency per batch and the ratio to the Mixtral-based baseline (mean ± std over seeds).

    \b
    Example:
      wdmoe-opt ablation --seeds 5 -o docs/results/table2.md
    """
    overrides = parse_assignments(sets, "--set")
    if tokens is not None:
        overrides["tokens"] = tokens
    rows = ablation_rows(preset, range(seeds), selection=selection, bandwidth=bandwidth,
                         **overrides)
    summary = summarize(rows)
    table = Table(title=f"Table II ablation ({preset}, {seeds} seeds)")
    header, cells = table_cells(summary, PAPER_ARC_C)
    for n, col in enumerate(header):
        table.add_column(col, justify="left" if n == 0 else "right")
    for row in cells:
        table.add_row(*row)
    Console(soft_wrap=True).print(table)
    if output:
        import pandas as pd

        md = Path(output)
        args = ["--preset", preset, "--seeds", str(seeds), "--selection", selection,
                "--bandwidth", bandwidth, *(["--tokens", str(tokens)] if tokens else []),
                *[x for kv in sets for x in ("--set", kv)], "-o", output]
        cmd = "wdmoe-opt ablation " + " ".join(shlex.quote(a) for a in args)
        atomic_write_text(md, to_markdown(summary, cmd, PAPER_ARC_C))
        atomic_write_text(md.with_suffix(".csv"), pd.DataFrame(rows).to_csv(index=False))
        click.echo(f"wrote {md} and {md.with_suffix('.csv')}")
