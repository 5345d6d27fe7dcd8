"""Every hostile value in every field: the exhaustive version of ``tests/fuzz``.

For each leaf (and container) of a small valid instance document and of its solution
document, and each value of ``tests/fuzz``'s ``HOSTILE`` list: the instance goes through
``wdmoe-opt solve`` (it holds when the CLI exits 2 with one line naming the field, or
solves and ``check`` accepts the result); the solution goes through ``check`` (it holds
when ``check`` answers 0, 1 or 2 without a traceback). Prints tried/held and each case
that did not hold; ``docs/reliability.md`` quotes the counts.

    .venv/bin/python benchmarks/reliability_sweep.py
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fuzz.test_fuzz_documents import (  # noqa: E402
    HOSTILE,
    INSTANCE,
    INSTANCE_PATHS,
    _leaves,
    _named,
    _set,
)
from wdmoe_opt.cli import main  # noqa: E402


def _cli(*args) -> tuple[object, str]:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main([str(a) for a in args])
    except BaseException as exc:  # a traceback: the case did not hold
        code = f"{type(exc).__name__}: {exc}"
    return code, err.getvalue()


def instance_cases(tmp: Path):
    for path in INSTANCE_PATHS:
        for value in HOSTILE:
            doc = json.loads(json.dumps(INSTANCE))
            _set(doc, path, value)
            (tmp / "i.json").write_text(json.dumps(doc))
            (tmp / "s.json").unlink(missing_ok=True)
            code, err = _cli("solve", tmp / "i.json", "--selection", "alg1", "--bandwidth",
                             "exact", "-o", tmp / "s.json")
            if code == 2:
                ok = err.count("\n") == 1 and _named(err, path) and not (tmp / "s.json").exists()
            else:
                ok = code == 0 and _cli("check", tmp / "i.json", tmp / "s.json")[0] == 0
            yield ("instance", path, value, ok, f"{code} {err.strip()[:160]}")


def solution_cases(tmp: Path):
    (tmp / "i.json").write_text(json.dumps(INSTANCE))
    assert _cli("solve", tmp / "i.json", "--selection", "alg1", "--bandwidth", "exact",
                "-o", tmp / "good.json")[0] == 0
    good = json.loads((tmp / "good.json").read_text())
    for path in [p for p, _ in _leaves(good) if p and p[0] not in ("solver", "extra")]:
        for value in HOSTILE:
            doc = json.loads(json.dumps(good))
            _set(doc, path, value)
            (tmp / "s.json").write_text(json.dumps(doc))
            code, err = _cli("check", tmp / "i.json", tmp / "s.json")
            yield ("solution", path, value, code in (0, 1, 2) and "Traceback" not in err,
                   f"{code} {err.strip()[:160]}")


def main_() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="wdmoe-fuzz-"))
    counts, failures = {}, []
    for kind, path, value, ok, why in [*instance_cases(tmp), *solution_cases(tmp)]:
        tried, held = counts.get(kind, (0, 0))
        counts[kind] = (tried + 1, held + ok)
        if not ok:
            failures.append((kind, path, value, why))
    for kind, (tried, held) in counts.items():
        print(f"{kind} documents: {tried} tried, {held} held")
    for f in failures:
        print("did not hold:", *f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main_())
