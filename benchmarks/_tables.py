"""The one markdown-table writer of the benchmark scripts (``docs/figures/*.md``)."""

from __future__ import annotations

import pandas as pd


def markdown_table(table: pd.DataFrame, fmt: str = ".4g") -> str:
    """A GitHub table of ``table``, floats formatted with ``fmt``."""
    cells = table.map(lambda v: format(v, fmt) if isinstance(v, float) else str(v))
    lines = [list(table.columns), ["---"] * len(table.columns), *cells.to_numpy().tolist()]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)
