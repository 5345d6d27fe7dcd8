"""A screenshot of a report page in headless Chromium, so a person sees what a user sees.

``python -m wdmoe_opt.harness.screenshot PAGE.html SHOT.png`` (``make report-check``).
Without a Chromium on the PATH it says so and exits 0: the check is for people, and
CI must not depend on a browser.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: Executable names tried, in order.
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Width and height of the window, pixels (tall enough for the first section).
WINDOW = (1500, 2600)


def find_browser() -> str | None:
    """The path of the first Chromium-like browser on the PATH, or None."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def screenshot(page: str | Path, shot: str | Path, browser: str,
               window: tuple[int, int] = WINDOW, timeout_s: float = 120.0) -> Path:
    """Render ``page`` with ``browser --headless`` into the PNG file ``shot``.

    Raises ``RuntimeError`` if the browser fails or writes no (or an empty) file."""
    page, shot = Path(page).resolve(), Path(shot).resolve()
    if not page.is_file():
        raise FileNotFoundError(page)
    shot.parent.mkdir(parents=True, exist_ok=True)
    shot.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="wdmoe-chromium-") as profile:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu",
               "--hide-scrollbars", f"--user-data-dir={profile}",
               f"--window-size={window[0]},{window[1]}", f"--screenshot={shot}",
               page.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if not shot.is_file() or shot.stat().st_size == 0:
        raise RuntimeError(f"{browser} wrote no screenshot (exit code {proc.returncode}): "
                           f"{proc.stderr.strip()[-500:]}")
    return shot


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m wdmoe_opt.harness.screenshot PAGE.html SHOT.png",
              file=sys.stderr)
        return 2
    browser = find_browser()
    if browser is None:
        print("report-check: skipped, no Chromium on the PATH (tried "
              f"{', '.join(BROWSERS)}; on Debian: apt-get install chromium)")
        return 0
    shot = screenshot(argv[0], argv[1], browser)
    print(f"report-check: {shot} ({shot.stat().st_size} bytes, {browser})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
