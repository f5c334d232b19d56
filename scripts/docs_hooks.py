"""mkdocs hooks of the documentation site (``mkdocs.yml``: ``hooks``).

- The results index lists every page the scripts wrote into ``docs/results/`` (each script
  writes its own page; the index is never edited by hand): the line
  ``<!-- results:pages -->`` of ``docs/results/index.md`` becomes one link per page, with
  the page's first heading.
- Docstrings are plain text read as Markdown; the reStructuredText roles some of them use
  (``:func:`name```, ``:class:``...) are dropped from the rendered API pages, leaving the
  name as code.
"""

from __future__ import annotations

import re
from pathlib import Path

MARKER = "<!-- results:pages -->"
_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj|ref):(?=<code)")


def results_list(folder: Path) -> str:
    """Markdown links to the ``*.md`` pages in ``folder`` other than ``index.md``."""
    lines = []
    for page in sorted(folder.glob("*.md")):
        if page.name == "index.md":
            continue
        text = page.read_text(encoding="utf-8")
        title = next((line.lstrip("#").strip() for line in text.splitlines()
                      if line.startswith("#")), page.stem)
        lines.append(f"- [{title}]({page.name})")
    return "\n".join(lines) or "*(no results pages yet: the scripts above write them)*"


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri == "results/index.md" and MARKER in markdown:
        folder = Path(config["docs_dir"]) / "results"
        markdown = markdown.replace(MARKER, results_list(folder))
    return markdown


def on_page_content(html, page, config, files):
    return _ROLE.sub("", html) if page.file.src_uri.startswith("api/") else html
