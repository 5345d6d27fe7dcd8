"""``wdmoe-opt info``: what an instance holds, or which methods exist."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from ..io import read_instance
from ..registry import methods
from ._render import print_instance


@click.command("info")
@click.argument("instance_file", required=False, type=click.Path(dir_okay=False))
@click.option("--methods", "list_methods", is_flag=True,
              help="List the registered methods, their options and availability.")
def command(instance_file, list_methods):
    """Summarize INSTANCE_FILE: sizes, loads, per-device link rates and per-token times.

    \b
    Example:
      wdmoe-opt info sim.json
      wdmoe-opt info --methods
    """
    console = Console(soft_wrap=True)
    if list_methods or instance_file is None:
        table = Table(title="registered methods")
        for col in ("method", "exact", "available", "options", "summary"):
            table.add_column(col)
        for m in methods():
            ok, why = m.available()
            opts = ", ".join(f"{n}={d!r}" for n, d, _ in m.options_cls.describe())
            table.add_row(m.key, "yes" if m.exact else "", "yes" if ok else why, opts, m.summary)
        console.print(table)
    if instance_file is not None:
        print_instance(read_instance(instance_file), console)
