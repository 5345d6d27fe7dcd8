"""The instance library: an index of named instances, stored or regenerated, with best knowns.

The index (``instances/index.json``, schema ``wdmoe-instance-index/1``) lists each
instance with its tier, sizes, generator (preset, seed, parameters), content hash and,
per benchmark problem, the best known objective. Small instances are stored next to the
index; large ones are regenerated from their generator entry into ``.cache/`` and
verified against the recorded hash, so the repository stays light. See
``docs/instances.md``.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..errors import InputError
from ..io import atomic_write_text, read_instance, write_instance
from ..io.instance_io import parse_json
from ..model import Instance

SCHEMA = "wdmoe-instance-index/1"
TIERS = ("tiny", "small", "paper", "large", "fast-fading", "recorded")
CACHE_DIR = ".cache"
INSTANCE_SUFFIXES = (".json", ".npz")


@dataclass(frozen=True)
class Entry:
    """One instance of the library.

    ``file`` is relative to the index folder (``None`` for a regenerated instance);
    ``generator`` is ``{"preset", "seed", "params"}`` for :func:`wdmoe_opt.generate.generate`;
    ``best_known`` maps a benchmark problem key (``p1/topk/uniform``, ``p2/topk``, ``p3``)
    to ``{"objective", "sense", "status", "bound", "solver", "updated"}``.
    """

    name: str
    tier: str
    hash: str
    sizes: Mapping
    generator: Mapping | None = None
    file: str | None = None
    best_known: Mapping = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Library:
    """The entries of an index file (``path`` is ``None`` for a folder of bare files)."""

    root: Path
    entries: tuple[Entry, ...]
    path: Path | None = None

    def select(self, tiers: Iterable[str] | None = None, limit: int | None = None) -> Library:
        """The entries of some tiers, at most ``limit`` of them (index order)."""
        chosen = [e for e in self.entries if tiers is None or e.tier in set(tiers)]
        return replace(self, entries=tuple(chosen[:limit] if limit else chosen))

    def get(self, name: str) -> Entry:
        for e in self.entries:
            if e.name == name:
                return e
        raise InputError("instance", "is not in the library", name)


def sizes_of(instance: Instance) -> dict:
    return {"layers": instance.n_layers, "tokens": instance.n_tokens,
            "experts": instance.n_experts, "devices": instance.n_devices,
            "top_k": instance.model.top_k, "fast_fading": instance.system.fast_fading}


def generate_entry(generator: Mapping, name: str) -> Instance:
    """The instance an entry's generator describes (deterministic from its seed)."""
    from ..generate import generate
    return generate(generator["preset"], generator["seed"], name=name,
                    **dict(generator.get("params", {})))


def pinned(instance: Instance, generator: Mapping) -> dict:
    """``generator`` with every scenario parameter the instance was made with, so a later
    change of a preset's defaults cannot change what the entry regenerates."""
    scenario = dict(instance.provenance.get("scenario") or generator.get("params", {}))
    return {"preset": generator["preset"], "seed": generator["seed"], "params": scenario}


def make_entry(root: Path, name: str, tier: str, generator: Mapping, store: bool) -> Entry:
    """Generate an instance; store it under ``root/<tier>/`` if ``store`` (JSON for the
    tiny and small tiers, ``.npz`` otherwise); return its index entry (generator pinned)."""
    inst = generate_entry(generator, name)
    file = None
    if store:
        suffix = ".json" if tier in ("tiny", "small") else ".npz"
        file = f"{tier}/{name}{suffix}"
        write_instance(inst, root / file)
    return Entry(name=name, tier=tier, hash=inst.content_hash, sizes=sizes_of(inst),
                 generator=pinned(inst, generator), file=file)


def materialize(library: Library, entry: Entry) -> Path:
    """The path of the entry's instance file, regenerating it into the cache if needed.

    The file's content hash must match the index (a stored file edited by hand, or a
    generator whose output changed, is an error naming the instance).
    """
    if entry.file is not None:
        path = library.root / entry.file
        _verify(read_instance(path), entry)
        return path
    if entry.generator is None:
        raise InputError(f"instance {entry.name}", "has neither a file nor a generator")
    path = library.root / CACHE_DIR / f"{entry.name}.npz"
    if path.exists():
        try:
            _verify(read_instance(path), entry)
            return path
        except InputError:
            pass  # stale cache: regenerate below
    inst = generate_entry(entry.generator, entry.name)
    _verify(inst, entry)
    write_instance(inst, path)
    return path


def _verify(instance: Instance, entry: Entry) -> None:
    if entry.hash and instance.content_hash != entry.hash:
        raise InputError(f"instance {entry.name}", "does not match the index hash "
                         f"{entry.hash}", instance.content_hash)


def read_library(path: str | Path) -> Library:
    """An index file, a folder holding ``index.json``, a folder of instance files or one
    instance file (the last two have no best known values)."""
    path = Path(path)
    if path.is_dir() and (path / "index.json").exists():
        path = path / "index.json"
    if path.is_file() and path.name.endswith("index.json"):
        doc = parse_json(path.read_bytes(), path)
        if doc.get("schema") != SCHEMA:
            raise InputError("schema", f"of {path} must be {SCHEMA!r}", doc.get("schema"))
        entries = tuple(Entry(**e) for e in doc.get("instances", []))
        return Library(path.parent, entries, path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in INSTANCE_SUFFIXES)
    elif path.is_file():
        files = [path]
    else:
        raise InputError("--instances", "does not exist", str(path))
    root = path if path.is_dir() else path.parent
    entries = []
    for f in files:
        inst = read_instance(f)
        entries.append(Entry(name=inst.name, tier="adhoc", hash=inst.content_hash,
                             sizes=sizes_of(inst), file=f.name))
    return Library(root, tuple(entries))


def write_library(library: Library, path: str | Path | None = None) -> Path:
    """Write the index atomically (one entry per line block, stable key order)."""
    target = Path(path or library.path or library.root / "index.json")
    doc = {"schema": SCHEMA, "instances": [e.to_dict() for e in library.entries]}
    return atomic_write_text(target, json.dumps(doc, indent=1, sort_keys=True) + "\n")


def improves(candidate: Mapping, current: Mapping | None, rtol: float = 1e-9) -> bool:
    """Whether ``candidate`` (objective, status, bound) improves the best known ``current``:
    a strictly better objective, or the same objective newly proven optimal, or a tighter
    bound."""
    if current is None or current.get("objective") is None:
        return True
    sign = 1.0 if candidate["sense"] == "min" else -1.0
    new, old = sign * candidate["objective"], sign * current["objective"]
    if new < old - rtol * abs(old):
        return True
    if new > old + rtol * abs(old):
        return False
    newly_optimal = candidate["status"] == "optimal" and current.get("status") != "optimal"
    return newly_optimal or _tighter(candidate.get("bound"), current.get("bound"), sign, rtol)


def _tighter(new_bound, old_bound, sign: float, rtol: float) -> bool:
    if new_bound is None:
        return False
    return old_bound is None or sign * new_bound > sign * old_bound + rtol * abs(old_bound)


def with_best_known(library: Library, updates: Mapping[tuple[str, str], Mapping]) -> Library:
    """A copy whose best known values are replaced by ``updates[(instance, problem_key)]``
    (stamped with today's date)."""
    today = _dt.date.today().isoformat()
    entries = []
    for e in library.entries:
        best = dict(e.best_known)
        for (name, key), value in updates.items():
            if name == e.name:
                best[key] = {**value, "updated": today}
        entries.append(replace(e, best_known=best))
    return replace(library, entries=tuple(entries))


def make_recorded_entry(root: Path, name: str, tier: str, recording: Mapping,
                        previous: Entry | None = None) -> Entry:
    """Record an instance from a torch model and store it as ``root/<tier>/<name>.npz``.

    ``recording`` holds the keyword arguments of :func:`wdmoe_opt.torch.record_text`
    (``model_spec``, ``tokens``, ``text``, ``context``, ``decode``, ``seed``,
    ``similarity``...); a relative ``text`` is relative to the folder above ``root``
    (the repository). The entry has no generator: the stored file is the instance
    (needs the torch extra). When the new instance is ``previous``'s plus a
    ``similarity`` block (same hash without it), ``previous``'s best known values
    carry over: P1-P3 do not read that block.
    """
    from ..torch import record_text

    args = dict(recording)
    if args.get("text") is not None and not Path(args["text"]).is_absolute():
        args["text"] = root.resolve().parent / args["text"]
    inst = replace(record_text(**args), name=name)
    inst = replace(inst, provenance={**inst.provenance, "recording": {
        **inst.provenance["recording"], "text": recording.get("text")}})
    file = f"{tier}/{name}.npz"
    write_instance(inst, root / file)
    same = (previous is not None and inst.similarity is not None
            and replace(inst, similarity=None).content_hash == previous.hash)
    return Entry(name=name, tier=tier, hash=inst.content_hash, sizes=sizes_of(inst), file=file,
                 best_known=previous.best_known if same else {})


def build_library(root: str | Path, specs: Iterable[Mapping]) -> Library:
    """(Re)build an index from ``specs`` (``name``, ``tier``, and ``generator`` and
    ``store``, or ``recording`` for :func:`make_recorded_entry`).

    An instance already in the index is kept, with its best known values, while it is
    still what the index says: its stored file, or what its (pinned) generator
    regenerates, has the recorded hash. Otherwise it is made anew from its spec and
    its best known values are dropped.
    """
    root = Path(root)
    old = {}
    if (root / "index.json").exists():
        old = {e.name: e for e in read_library(root).entries}
    entries = []
    for spec in specs:
        if spec["tier"] not in TIERS:
            raise InputError(f"instance {spec['name']}: tier",
                             "must be one of " + ", ".join(TIERS), spec["tier"])
        prev = old.get(spec["name"])
        if prev is not None and _still_valid(root, prev):
            entries.append(prev)
        elif "recording" in spec:
            entries.append(make_recorded_entry(root, spec["name"], spec["tier"],
                                               spec["recording"], prev))
        else:
            entries.append(make_entry(root, spec["name"], spec["tier"], spec["generator"],
                                      spec["store"]))
    library = Library(root, tuple(entries), root / "index.json")
    write_library(library)
    return library


def _still_valid(root: Path, entry: Entry) -> bool:
    if entry.file is not None:
        path = root / entry.file
        return path.exists() and read_instance(path).content_hash == entry.hash
    return generate_entry(entry.generator, entry.name).content_hash == entry.hash
