"""Solve a long recording as a stream of batches, writing results as it goes.

A long prefill or a decode trace can hold more tokens than one solve should take
(or than memory holds at once). :func:`batches` cuts an instance file, or every
instance file of a folder, into consecutive token batches *lazily*: from an
``.npz`` file whose gating array is stored uncompressed (what
:func:`~wdmoe_opt.io.write_instance` writes) each batch reads only its own slice
from disk. :func:`solve_stream` solves each batch with a given method callable,
writes each ``wdmoe-solution/1`` file atomically as soon as it is found, and
records it in the folder's manifest (``stream.jsonl``: a header line, then one
line per solved batch, appended), so an interrupted run resumes where it stopped:
batches already in the manifest are skipped without being read again.

A batch is an :class:`~wdmoe_opt.model.Instance` of its own (the tokens
``j0:j1`` of every layer, the same model, system and placement): the paper's
problems are per batch (eq. 13 sums one batch's layer latencies), so the stream's
total latency is the sum over its batches.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .io import read_instance, write_solution
from .io.atomic import atomic_write_text
from .io.instance_io import SCHEMA as INSTANCE_SCHEMA
from .io.instance_io import instance_from_dict, parse_json, read_bytes
from .io.npz import is_npz, map_member, read_npz
from .model import Instance
from .solution import Solution

MANIFEST = "stream.jsonl"
MANIFEST_SCHEMA = "wdmoe-stream/1"
_SUFFIXES = (".npz", ".json")


@dataclass(frozen=True)
class Batch:
    """One batch of a stream: tokens ``[start, stop)`` of the instance file ``path``.

    ``key`` names it (and its solution file) uniquely within the stream; ``load``
    reads it (only its slice, from an uncompressed ``.npz``).
    """

    key: str
    path: Path
    start: int
    stop: int
    load: Callable[[], Instance]


def _source_files(source: Path) -> list[Path]:
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix in _SUFFIXES and p.is_file())
        if not files:
            raise InputError("source", "is a folder without instance files (.npz, .json)",
                             str(source))
        stems = [p.stem for p in files]
        twins = sorted({s for s in stems if stems.count(s) > 1})
        if twins:
            raise InputError("source", "holds two instance files with one name (a batch "
                             "is named by its file's stem)", twins)
        return files
    if not source.exists():
        raise InputError("source", "does not exist", str(source))
    return [source]


def _file_batches(path: Path, batch_size: int) -> Iterator[Batch]:
    """The batches of one instance file, reading nothing but its header up front."""
    weights = None
    if is_npz(path, "instance file"):
        header, _ = read_npz(path, "wdmoe-instance", ())
        doc = parse_json(header, path)
        weights = map_member(path, "gating_weights")   # for its shape; mapped anew per batch
    if weights is None:                       # JSON or a compressed .npz: read it whole
        whole = read_instance(path)
        doc, weights = None, whole.gating_weights
    if doc is not None and doc.get("schema") != INSTANCE_SCHEMA:
        raise InputError("schema", f"must be {INSTANCE_SCHEMA!r}", doc.get("schema"))
    if weights.ndim != 3:
        raise InputError("gating.weights", "must be an [I][J][E] array", weights.shape)
    n_tokens = weights.shape[1]
    single = n_tokens <= batch_size
    for start in range(0, n_tokens, batch_size):
        stop = min(start + batch_size, n_tokens)
        key = path.stem if single else f"{path.stem}.t{start:09d}-{stop:09d}"

        def load(start=start, stop=stop) -> Instance:
            if doc is None:
                return whole if single else whole.replace(
                    gating_weights=whole.gating_weights[:, start:stop, :],
                    **_batch_meta(whole.name, whole.provenance, start, stop))
            part = doc if single else {**doc, **_batch_meta(doc.get("name"),
                                                            doc.get("provenance"), start, stop)}
            return instance_from_dict(part, _read_tokens(path, start, stop))
        yield Batch(key, path, start, stop, load)


def _read_tokens(path: Path, start: int, stop: int) -> np.ndarray:
    """Tokens ``[start, stop)`` of the file's gating array, through a map that is
    dropped at once: the file's pages read so far do not stay in this process."""
    mapped = map_member(path, "gating_weights")
    part = np.array(mapped[:, start:stop, :])
    del mapped
    return part


def _batch_meta(name, provenance, start: int, stop: int) -> dict:
    """Name and provenance of tokens ``[start, stop)`` of the instance ``name``."""
    return {"name": f"{name}[{start}:{stop}]",
            "provenance": {**(provenance or {}), "batch_of": name, "tokens": [start, stop]}}


def batches(source: str | os.PathLike, batch_size: int) -> Iterator[Batch]:
    """The stream's batches, lazily: every file of ``source`` (one instance file, or
    a folder of them in name order) cut into consecutive batches of ``batch_size``
    tokens (the last one shorter). Each file's header is read when the stream
    reaches it; each batch's tokens when it is loaded."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError("--batch-size", "must be a positive integer", batch_size)
    for path in _source_files(Path(source)):
        yield from _file_batches(path, batch_size)


def count_batches(source: str | os.PathLike, batch_size: int) -> int:
    """How many batches :func:`batches` yields (for a progress bar): the headers of
    ``.npz`` files only, but JSON files (and compressed ``.npz``) are read whole."""
    return sum(1 for _ in batches(source, batch_size))


@dataclass(frozen=True)
class StreamReport:
    """What a stream run did: every batch's manifest row, and how many were solved now
    (the others were done by an earlier, interrupted run)."""

    rows: tuple[dict, ...]
    solved_now: int

    @property
    def total_latency_s(self) -> float:
        """Sum of the batches' latencies ``T`` (eq. 13 per batch; ``inf`` if one is)."""
        return float(sum(np.inf if r["objective_s"] is None else r["objective_s"]
                         for r in self.rows))

    @property
    def tokens(self) -> int:
        return sum(r["tokens"][1] - r["tokens"][0] for r in self.rows)


def solve_stream(source: str | os.PathLike, batch_size: int,
                 solve: Callable[[Instance], Solution], out_dir: str | os.PathLike, *,
                 label: str, suffix: str = ".npz",
                 on_batch: Callable[[dict], None] | None = None) -> StreamReport:
    """Solve every batch of ``source`` with ``solve`` and write the results as it goes.

    Parameters
    ----------
    source : path
        One ``wdmoe-instance/1`` file, or a folder of them (solved in name order).
    batch_size : int
        Tokens per batch (:func:`batches`).
    solve : callable
        ``Instance -> Solution``: the method, with its options bound.
    out_dir : path
        Where each batch's solution (``<key><suffix>``) and the manifest
        (:data:`MANIFEST`) go. If it holds the manifest of an earlier run of the
        same ``source``, ``batch_size`` and ``label``, the run resumes: batches
        listed there are skipped.
    label : str
        Names the method and its options; a resumed run must have the same.
    suffix : ``".npz"`` or ``".json"``
        Form of the solution files.
    on_batch : callable, optional
        Called with each batch's manifest row, skipped or solved (progress).

    Raises
    ------
    InputError
        A bad ``batch_size`` or ``suffix``, a missing source, or an ``out_dir`` that
        holds the manifest of a different run.
    """
    if suffix not in _SUFFIXES:
        raise InputError("suffix", f"must be one of {', '.join(_SUFFIXES)}", suffix)
    out = Path(out_dir)
    if Path(source).is_dir() and out.resolve() == Path(source).resolve():
        raise InputError("out_dir", "must not be the source folder (its solution files "
                         "would be read as instances)", str(out))
    identity = {"schema": MANIFEST_SCHEMA, "source": str(Path(source).resolve()),
                "batch_size": batch_size, "label": label}
    done = _resume(out, identity)
    rows, solved = [], 0
    for batch in batches(source, batch_size):
        row = done.get(batch.key)
        if row is None or not (out / row["file"]).exists():
            instance = batch.load()
            solution = solve(instance)
            name = batch.key + suffix
            write_solution(solution, out / name)
            row = {"key": batch.key, "file": name, "source": batch.path.name,
                   "tokens": [batch.start, batch.stop], "instance": instance.name,
                   "hash": instance.content_hash, "status": str(solution.status),
                   "objective_s": _finite(solution.objective_s),
                   "wlr_total": _finite(solution.wlr_total),
                   "solve_time_s": solution.solve_time_s}
            _append(out / MANIFEST, row)
            solved += 1
            del instance, solution      # before the next batch loads: one batch in memory
        rows.append(row)
        if on_batch is not None:
            on_batch(row)
    return StreamReport(tuple(rows), solved)


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _resume(out: Path, identity: dict) -> dict[str, dict]:
    """The rows of an earlier run's manifest in ``out``; starts one if there is none.

    A last line cut short by an interruption is ignored (its batch is solved again).
    """
    path = out / MANIFEST
    if not path.exists():
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(identity) + "\n")
        return {}
    lines = read_bytes(path, "stream manifest").decode("utf-8", "replace").splitlines()
    try:
        head = json.loads(lines[0]) if lines else None
    except json.JSONDecodeError:
        head = None
    if not isinstance(head, dict) or head.get("schema") != MANIFEST_SCHEMA:
        raise InputError(str(path), f"is not a {MANIFEST_SCHEMA} manifest")
    for key, value in identity.items():
        if head.get(key) != value:
            raise InputError(str(out), f"holds a stream run with another {key} "
                             f"({head.get(key)!r}); resume with the same one or use a "
                             "new folder", value)
    rows = {}
    for line in lines[1:]:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        rows[row["key"]] = row
    return rows


def _append(path: Path, row: dict) -> None:
    """Add ``row`` as one line (written and flushed in one call, after its solution)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
