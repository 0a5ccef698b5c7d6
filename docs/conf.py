"""Sphinx configuration: ``sphinx-build -W -b html docs docs/_build/html`` (warnings are errors).

The rule table of ``rules_primer.rst`` is generated here from the rule catalogue
(``synaptic_fwp.rules.catalogue()``) when the page is read, so the docs show the one definition
the code uses (nothing is written into the source tree).
Markdown pages (``*.md``) are excluded: Sphinx reads them only with myst-parser, which is not a
dependency.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("MPLBACKEND", "Agg")

import synaptic_fwp  # noqa: E402
from synaptic_fwp import rules  # noqa: E402

project = "synaptic_fwp"
author = "synaptic_fwp developers"
copyright = "2026, synaptic_fwp developers"  # noqa: A001
release = synaptic_fwp.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
]
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build", "_generated", "**.md", "**.ipynb_checkpoints"]
templates_path: list[str] = []
html_theme = "alabaster"
html_static_path: list[str] = []
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
autodoc_typehints = "none"
autodoc_member_order = "bysource"
autodoc_mock_imports = ["triton"]
nitpicky = False
suppress_warnings = ["autodoc.import_object"] if os.environ.get("SFWP_DOCS_LENIENT") else []


def _rst_cell(s: str) -> str:
    return "``" + s.replace("``", "` `") + "``" if s else ""


def _rule_table() -> str:
    """The list-table of every catalogue rule (replaces the ``rules-table`` marker)."""
    lines = [
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 14 36 32 18",
        "",
        "   * - name",
        "     - update (``W``: post x pre)",
        "     - local loss",
        "     - source",
    ]
    for name, r in sorted(rules.catalogue().items()):
        lines += [
            f"   * - ``{name}``",
            f"     - {_rst_cell(str(getattr(r, 'equation', '')))}",
            f"     - {_rst_cell(str(getattr(r, 'loss', '')))}",
            f"     - {str(getattr(r, 'source', '')).replace('*', '')}",
        ]
    return "\n".join(lines) + "\n"


_MARKER = ".. rules-table (generated from synaptic_fwp.rules.catalogue() by conf.py)"


def _source_read(app, docname, source):  # noqa: ARG001
    if _MARKER in source[0]:
        source[0] = source[0].replace(_MARKER, _rule_table())

# ----------------------------------------------------------------------------- docstrings
# The project's docstrings use numpy-style section headers with a compact "name : description"
# entry style (not numpy's "name : type"), which sphinx.ext.napoleon would misread as types.
# This hook renders each section as a rubric and its entries as a bullet list instead.

_SECTIONS = {
    "Parameters",
    "Returns",
    "Raises",
    "Yields",
    "Attributes",
    "Other Parameters",
    "Notes",
    "Examples",
    "References",
    "See Also",
    "Warnings",
    "Methods",
}
_LISTED = {"Parameters", "Returns", "Raises", "Yields", "Attributes", "Other Parameters", "Methods"}


_ENTRY = re.compile(r"^[A-Za-z_*][\w*.]*(\s*,\s*[A-Za-z_*][\w*.]*)*\s*(:(\s|$)|$)")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _numpy_sections(lines: list[str]) -> list[str]:
    out: list[str] = []
    i, section, base = 0, None, 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        title = line.strip()
        if (
            title in _SECTIONS
            and nxt.strip()
            and set(nxt.strip()) == {"-"}
            and len(nxt.strip()) >= len(title) - 1
        ):
            if out and out[-1].strip():
                out.append("")
            out += [f"{' ' * _indent(line)}.. rubric:: {title}", ""]
            section, base = title, _indent(line)
            i += 2
            continue
        if section in _LISTED and line.strip():
            starts = _indent(line) <= base and (
                _ENTRY.match(line.strip()) or not out or not out[-1].strip()
                or out[-1].strip().startswith(".. rubric::")
            )
            if starts:
                out.append(" " * base + "* " + line.strip())
            else:
                out.append(" " * (base + 2) + line.strip())
        else:
            out.append(line)
        i += 1
    return out


def _process_docstring(app, what, name, obj, options, lines):  # noqa: ARG001
    lines[:] = _numpy_sections(list(lines))


def setup(app):
    app.connect("autodoc-process-docstring", _process_docstring)
    app.connect("source-read", _source_read)
