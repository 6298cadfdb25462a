"""Sphinx configuration of isolator's documentation site.

Build it with ``tox -e docs``, or ``python -m sphinx -W --keep-going -b html docs
docs/_build/html`` after ``pip install -e '.[docs]'``. The pages are the Markdown files
beside this one (read by MyST), the Python reference comes from the docstrings
(``reference.rst``), the command line's page from its real argparse parser (``cli.rst``),
and every option's table from the one declaration of options (``_ext/isolator_docs.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE / "_ext")]

import isolator  # noqa: E402

project = "isolator"
author = "the isolator authors"
copyright = "the isolator authors"
release = version = isolator.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinxarg.ext",
    "isolator_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"

# The Markdown pages link to their own headings (``[isolated](#isolated)``) as GitHub
# renders them; MyST makes the same anchors.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
# A method without a docstring of its own would show its base class's (joblib's,
# concurrent.futures'), whose markup is not this site's to keep clean.
autodoc_inherit_docstrings = False

html_theme = "alabaster"
html_title = f"isolator {release}"
# Wide enough for the guides' code and the reference's tables without scrolling.
html_theme_options = {"description": "memory-capped child processes that say why",
                      "fixed_sidebar": True, "page_width": "1240px",
                      "body_max_width": "none"}

# isolated's and the pools' signatures spell out every option: one parameter a line.
python_maximum_signature_line_length = 88
