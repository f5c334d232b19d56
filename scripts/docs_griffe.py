"""A griffe extension for the API pages (``mkdocs.yml``): the docstrings here are plain text
in a reStructuredText accent; this makes them read as Markdown.

- a list (``- item``) right after a line of text gets the blank line Markdown needs;
- a paragraph ending in ``::`` (a literal block follows) ends in ``:``;
- the literal block itself is indented, which Markdown already reads as code.
"""

from __future__ import annotations

import re

from griffe import Extension

_ITEM = re.compile(r"^\s*(?:[-*+]|\d+\.)\s")


def markdownify(text: str) -> str:
    """``text`` with blank lines before lists and ``::`` endings made ``:``."""
    out: list[str] = []
    for line in text.splitlines():
        prev = out[-1] if out else ""
        if _ITEM.match(line) and prev.strip() and not _ITEM.match(prev) \
                and not prev.startswith((" ", "\t")):
            out.append("")
        if line.rstrip().endswith("::") and not line.strip().startswith((":", "..")):
            line = line.rstrip()[:-1]
            out.extend([line, ""])
            continue
        out.append(line)
    return "\n".join(out)


class PlainDocstrings(Extension):
    def on_instance(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdownify(obj.docstring.value)
