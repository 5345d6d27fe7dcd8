"""Fuzz: mutated instance and solution documents keep the contract.

Every leaf of a valid document (and some containers) is replaced by a hostile value:
NaN, +-inf, a negative, zero, a string, a list, an object, null, a huge number, a
boolean. The CLI must then either exit 2 with one line that names the mutated field
(no traceback), or succeed with a result that the independent checker accepts. The
fast profile runs a bounded number of examples; ``make test-slow`` runs more.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wdmoe_opt.cli import main
from wdmoe_opt.generate import generate
from wdmoe_opt.io import instance_to_dict

HOSTILE = [math.nan, math.inf, -math.inf, -1.0, 0.0, "abc", [], {}, None, 1e308, -1e308,
           True, [1.0, 2.0], 10**30]


def _leaves(doc, path=()):
    """Every (path, value) of a JSON document, containers included."""
    yield path, doc
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(doc, list):
        for n, v in enumerate(doc[:3]):          # the first few items of a long list
            yield from _leaves(v, (*path, n))


def _set(doc, path, value):
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _named(err: str, path: tuple) -> bool:
    """Whether the error line names the mutated field (its key, or its container's)."""
    keys = [k for k in path if isinstance(k, str)]
    return any(k in err for k in keys[-2:]) or (not keys)


INSTANCE = instance_to_dict(generate("wdmoe-sim", seed=0, layers=2, tokens=3, experts=3,
                                     devices=3))
INSTANCE_PATHS = [p for p, _ in _leaves(INSTANCE) if p and p[0] not in ("provenance", "name")]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(INSTANCE_PATHS), value=st.sampled_from(HOSTILE))
def test_a_mutated_instance_is_refused_naming_the_field_or_solved_and_checked(
        tmp_path_factory, capsys, path, value):
    tmp = tmp_path_factory.mktemp("fuzz")
    doc = json.loads(json.dumps(INSTANCE))
    _set(doc, path, value)
    inst = tmp / "i.json"
    inst.write_text(json.dumps(doc))
    code = main(["solve", str(inst), "--selection", "alg1", "--bandwidth", "exact",
                 "-o", str(tmp / "s.json")])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("error: ")
        assert _named(err, path), (path, value, err)
        assert not (tmp / "s.json").exists()
    else:
        assert code == 0, (path, value, err)
        assert main(["check", str(inst), str(tmp / "s.json")]) == 0, (path, value)


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("solved")
    inst = tmp / "i.json"
    inst.write_text(json.dumps(INSTANCE))
    assert main(["solve", str(inst), "--selection", "alg1", "--bandwidth", "exact",
                 "-o", str(tmp / "s.json")]) == 0
    return inst, json.loads((tmp / "s.json").read_text())


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), value=st.sampled_from(HOSTILE))
def test_a_mutated_solution_never_crashes_the_checker(solved, tmp_path_factory, capsys, data,
                                                      value):
    inst, sol = solved
    paths = [p for p, _ in _leaves(sol) if p and p[0] not in ("solver", "extra", "schema")]
    path = data.draw(st.sampled_from(paths))
    doc = json.loads(json.dumps(sol))
    _set(doc, path, value)
    out = tmp_path_factory.mktemp("sol") / "s.json"
    out.write_text(json.dumps(doc))
    code = main(["check", str(inst), str(out)])
    err = capsys.readouterr().err
    assert "Traceback" not in err and code in (0, 1, 2), (path, value, err)
