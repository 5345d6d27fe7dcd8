"""``make report-check``'s screenshot: skipped with a message without a browser, a PNG
with one."""

from __future__ import annotations

import pytest

from wdmoe_opt.harness import screenshot as shot


def test_without_a_browser_it_says_so_and_succeeds(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(shot.shutil, "which", lambda name: None)
    page = tmp_path / "index.html"
    page.write_text("<html><body>hi</body></html>")
    assert shot.main([str(page), str(tmp_path / "shot.png")]) == 0
    assert "skipped, no Chromium" in capsys.readouterr().out
    assert not (tmp_path / "shot.png").exists()
    assert shot.main([str(page)]) == 2


@pytest.mark.slow
@pytest.mark.skipif(shot.find_browser() is None, reason="no Chromium on the PATH")
def test_with_a_browser_it_writes_a_png(tmp_path):
    page = tmp_path / "index.html"
    page.write_text("<html><body><h1>report</h1></body></html>")
    path = shot.screenshot(page, tmp_path / "shot.png", shot.find_browser(), window=(400, 300))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
