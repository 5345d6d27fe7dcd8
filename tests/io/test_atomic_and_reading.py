"""Writes never replace what they should write through; reads refuse what they cannot read."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from wdmoe_opt.errors import InputError
from wdmoe_opt.io.atomic import atomic_write_text
from wdmoe_opt.io.instance_io import parse_json, read_bytes


def test_a_symlink_is_written_through(tmp_path):
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    atomic_write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "new"


def test_a_special_file_is_written_to_not_replaced():
    atomic_write_text("/dev/null", "nothing")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_new_files_follow_the_umask_and_replaced_ones_keep_their_mode(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.json", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode) == 0o640
    os.chmod(tmp_path / "a.json", 0o600)
    atomic_write_text(tmp_path / "a.json", "y")
    assert stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode) == 0o600


def test_an_unwritable_target_is_one_input_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="cannot be written"):
        atomic_write_text(tmp_path / "file" / "under.json", "x")
    with pytest.raises(InputError, match="is a folder"):
        atomic_write_text(tmp_path, "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]    # no temporary left


@pytest.mark.parametrize("raw, message", [
    (b'{"a": 1, "a": 2}', "appears twice"),
    (b"[" * 100_000 + b"]" * 100_000, "too deeply"),
    (b'{"x": ' + b"1" * 5000 + b"}", "cannot be read"),
    (b"\xff\xfe", "neither JSON"),
    (b"[1, 2]", "JSON object"),
])
def test_bad_json_is_one_input_error(raw, message):
    with pytest.raises(InputError, match=message):
        parse_json(raw, Path("doc.json"))


def test_only_regular_files_under_the_limit_are_read(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="not a regular file"):
        read_bytes(Path("/dev/zero"), "instance file")
    big = tmp_path / "big.json"
    big.write_bytes(b"{}" * 10)
    monkeypatch.setattr("wdmoe_opt.io.instance_io.MAX_FILE_BYTES", 8)
    with pytest.raises(InputError, match="larger than the limit"):
        read_bytes(big, "instance file")


def _npz_with(tmp_path, weights_header: bytes | None = None, weights=None) -> Path:
    import io
    import zipfile

    import numpy as np

    from wdmoe_opt.generate import generate
    from wdmoe_opt.io import write_instance

    good = tmp_path / "good.npz"
    write_instance(generate("wdmoe-sim", seed=0, layers=2, tokens=3, experts=3, devices=3),
                   good)
    members = dict(np.load(good))
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(bad, "w") as zf:
        for name, array in members.items():
            buf = io.BytesIO()
            if name == "gating_weights" and weights_header is not None:
                buf.write(weights_header)
            else:
                np.save(buf, array if name != "gating_weights" or weights is None else weights)
            zf.writestr(f"{name}.npy", buf.getvalue())
    return bad


def test_an_npz_member_is_checked_before_it_is_read(tmp_path):
    import io

    import numpy as np

    from wdmoe_opt.io import read_instance

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (2, 10**11, 8)})
    with pytest.raises(InputError, match=r"declares shape \(2, 100000000000, 8\)"):
        read_instance(_npz_with(tmp_path, weights_header=header.getvalue()))
    complex_weights = np.ones((2, 3, 3), dtype=complex) / 3
    with pytest.raises(InputError, match="real numbers"):
        read_instance(_npz_with(tmp_path, weights=complex_weights))
