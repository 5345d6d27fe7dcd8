"""Look at the built site, not only build it (``make docs-check``).

Checks every page of ``docs/_build/html``: each ``<img>`` points to a non-empty local
file, the API pages of ``docs/api.rst`` and every gallery example (with at least one
figure) exist, the search index holds the pages. Then, where Chromium is installed,
opens the site headless: screenshots of the home page and the gallery
(``docs/_build/screenshots/``) and an offline search that must find pages. Exits 1 with
one line per problem.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
SITE = DOCS / "_build" / "html"
SHOTS = DOCS / "_build" / "screenshots"


def static_problems() -> list[str]:
    out = []
    pages = sorted(SITE.rglob("*.html"))
    if not pages:
        return [f"no pages under {SITE}: run `make docs` first"]
    for page in pages:
        for src in re.findall(r'<img[^>]+src="([^"]+)"', page.read_text(encoding="utf-8")):
            if src.startswith(("http:", "https:", "data:")):
                continue
            target = (page.parent / src.split("#")[0]).resolve()
            if not target.is_file() or target.stat().st_size == 0:
                out.append(f"{page.relative_to(SITE)}: broken image {src}")
    for name in re.findall(r"^\s+(wdmoe_opt\.[\w.]+)$", (DOCS / "api.rst").read_text(), re.M):
        if not (SITE / "generated" / f"{name}.html").is_file():
            out.append(f"API page missing: {name}")
    for example in sorted((DOCS.parent / "examples").glob("plot_*.py")):
        if not (SITE / "auto_examples" / f"{example.stem}.html").is_file():
            out.append(f"gallery page missing: {example.stem}")
        if not list((SITE / "_images").glob(f"sphx_glr_{example.stem}_[0-9]*.png")):
            out.append(f"gallery example {example.stem} shows no figure")
    if "docnames" not in (SITE / "searchindex.js").read_text(encoding="utf-8"):
        out.append("searchindex.js holds no pages")
    return out


def browser_problems(browser: str) -> list[str]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"]
    out = []
    for page in ("index.html", "auto_examples/index.html", "api.html"):
        shot = SHOTS / (page.replace("/", "_").removesuffix(".html") + ".png")
        subprocess.run([*base, f"--screenshot={shot}", (SITE / page).as_uri()],
                       capture_output=True, timeout=120)
        if not shot.is_file() or shot.stat().st_size < 10_000:
            out.append(f"screenshot of {page} is missing or blank")
    dom = subprocess.run([*base, "--virtual-time-budget=8000", "--dump-dom",
                          (SITE / "search.html").as_uri() + "?q=bandwidth"],
                         capture_output=True, text=True, timeout=120).stdout
    found = re.search(r"found (\d+) page", dom)
    if not found or int(found.group(1)) == 0:
        out.append("offline search for 'bandwidth' found no page")
    return out


def main() -> int:
    problems = static_problems()
    browser = next((b for b in ("chromium", "chromium-browser", "google-chrome")
                    if shutil.which(b)), None)
    if browser is None:
        print("note: no Chromium found (apt-get install chromium); screenshots skipped")
    elif not problems:
        problems += browser_problems(browser)
    for p in problems:
        print(p)
    if not problems:
        print(f"site OK: {len(list(SITE.rglob('*.html')))} pages"
              + (f", screenshots in {SHOTS}" if browser else ""))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
