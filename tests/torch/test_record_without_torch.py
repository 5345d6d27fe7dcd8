"""Without the torch extra: ``record`` says how to install it; nothing else needs torch."""

import subprocess
import sys

from wdmoe_opt.cli import main, record


def test_record_without_torch_exits_2_with_the_install_hint(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(record.importlib.util, "find_spec",
                        lambda name: None if name in ("torch", "transformers") else object())
    assert main(["record", "--model", "tiny-mixtral", "-o", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install torch==2.13.0" in err
    assert "Traceback" not in err and not (tmp_path / "x.json").exists()
    text = tmp_path / "t.txt"
    text.write_text("text")
    assert main(["evaluate", "--model", "wdmoe-tiny-moe", "--text", str(text)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: evaluate needs") and "pip install torch==2.13.0" in err


def test_the_package_and_its_cli_do_not_import_torch():
    code = ("import sys, wdmoe_opt, wdmoe_opt.cli, wdmoe_opt.io, wdmoe_opt.generate; "
            "wdmoe_opt.methods(); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
