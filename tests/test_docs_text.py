"""The documentation stands on its own: no text points outside the repository.

A reader of the site or of a clone has only the repository, so pages may not
cite notes kept elsewhere (``../shared/``, ``DESIGN.md``, ``STYLE.md``) or
absolute paths of one machine.  The math renders offline: ``conf.py`` loads
MathJax from a local copy (``.ci/run`` checks the built pages load nothing
from the network).
"""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PENDING: set[str] = set()  # pages left out of the check (none)
TEXTS = sorted(p for p in DOCS.rglob("*")
               if p.suffix in {".rst", ".md", ".py", ".txt"} and "_build" not in p.parts
               and p.name not in PENDING)
OUTSIDE = re.compile(r"\.\./shared|\bshared/|DESIGN\.md|STYLE\.md|/work/|/home/|/root/|"
                     r"machines of this project|this project's machine")


def test_the_pages_are_found():
    assert {"index.rst", "math.rst", "scaling.rst", "conf.py"} <= {p.name for p in TEXTS}


@pytest.mark.parametrize("path", TEXTS, ids=lambda p: str(p.relative_to(DOCS)))
def test_no_reference_outside_the_repository(path):
    hits = [f"{n}: {line.strip()}" for n, line in enumerate(path.read_text().splitlines(), 1)
            if OUTSIDE.search(line)]
    assert not hits, "\n".join(hits)


def test_math_is_rendered_from_a_local_mathjax():
    conf = (DOCS / "conf.py").read_text()
    assert '"sphinx-mathjax-offline"' in conf
    assert "mathjax_path" not in conf  # the extension points it at _static/mathjax
