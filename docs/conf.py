"""Sphinx configuration of the fastlstm documentation.

Build with ``sphinx-build -W -b html docs docs/_build/html`` (warnings are errors).
"""

from __future__ import annotations

import importlib.util

import fastlstm

project = "fastlstm"
author = "fastlstm developers"
copyright = "fastlstm developers"
version = release = fastlstm.__version__

# Math is typeset by MathJax 3 in the browser, from a copy that
# sphinx-mathjax-offline puts into _static/mathjax: the pages need no network.
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",
    "numpydoc",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"

# numpydoc renders the Parameters/Returns sections; api.rst lists the members.
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

html_theme = "furo" if importlib.util.find_spec("furo") else "alabaster"
html_title = f"fastlstm {release}"
html_static_path = ["_static"]
html_css_files = ["math.css"]
