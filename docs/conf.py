"""Sphinx configuration of the wdmoe-opt site (``make docs``; warnings are errors).

The user guide is the Markdown pages of this folder (MyST), the API reference is
generated from the numpydoc docstrings (autodoc + autosummary + napoleon), the CLI
reference from the click commands (sphinx-click), and the gallery runs every
script of ``examples/`` at build time (sphinx-gallery).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLBACKEND", "Agg")

from wdmoe_opt import __version__  # noqa: E402

project = "wdmoe-opt"
author = "the wdmoe-opt developers"
copyright = "2026, the wdmoe-opt developers"
release = version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx_click",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "results/*.md", "figures/*.md", "**/README.md"]
myst_heading_anchors = 3
suppress_warnings = ["myst.xref_missing", "myst.header"]

autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_numpy_docstring = True
napoleon_google_docstring = False

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "matplotlib_animations": False,
}

html_theme = "pydata_sphinx_theme"
html_title = f"wdmoe-opt {version}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_static_path = []
