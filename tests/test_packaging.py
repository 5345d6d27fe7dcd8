"""The package as users get it: one version everywhere, and a wheel that works alone."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import wdmoe_opt
from tests.conftest import small_instance
from wdmoe_opt.io import solution_to_dict

ROOT = Path(__file__).resolve().parent.parent


def test_one_version_in_the_metadata_the_package_and_the_solutions():
    version = importlib.metadata.version("wdmoe-opt")
    assert wdmoe_opt.__version__ == version
    sol = wdmoe_opt.solve(wdmoe_opt.JointProblem(small_instance()), "sequential")
    assert solution_to_dict(sol)["solver"]["version"] == version


def _run(*args, cwd: Path) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_the_wheel_installs_and_runs_without_the_source_tree(tmp_path):
    """Build sdist and wheel (with the compiled kernel), install the wheel alone into a
    fresh virtual environment whose only other packages are the dependencies, and run
    the command line from a folder without the source tree."""
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, ROOT, cwd=tmp_path)
    wheels, sdists = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    listing = _run(sys.executable, "-m", "zipfile", "-l", wheels[0], cwd=tmp_path)
    assert "_p3kernel" in listing
    # the shipped trained model (docs/model-zoo.md) travels with the package
    for name in ("model.safetensors", "config.json", "training.json", "heldout.txt"):
        assert f"wdmoe_opt/torch/checkpoints/wdmoe-tiny-moe/{name}" in listing
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    deps = sysconfig.get_paths()["purelib"]        # the dependencies, not the editable source
    site = Path(_run(venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig."
                     "get_paths()['purelib'])", cwd=tmp_path).strip())
    (site / "zz_dependencies.pth").write_text(deps + "\n")
    _run(venv / "bin" / "python", "-m", "pip", "install", "--no-deps", "--no-index", wheels[0],
         cwd=tmp_path)
    where = _run(venv / "bin" / "python", "-c", "import wdmoe_opt; print(wdmoe_opt.__file__)",
                 cwd=tmp_path)
    assert str(ROOT) not in where and str(venv) in where
    cli = venv / "bin" / "wdmoe-opt"
    assert "Usage" in _run(cli, "--help", cwd=tmp_path)
    _run(cli, "generate", "wdmoe-sim", "--tokens", "32", "-o", "i.json", cwd=tmp_path)
    _run(cli, "solve", "i.json", "--selection", "alg1", "--bandwidth", "exact", "-o", "s.json",
         cwd=tmp_path)
    assert "OK" in _run(cli, "check", "i.json", "s.json", cwd=tmp_path)
