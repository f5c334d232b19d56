"""The documentation site builds strictly, and every ```python block of docs/ runs.

The blocks of one page run in order in one namespace (a block may continue an earlier one,
as a reader would), in a temporary folder with ``HOME`` there too, exactly as
``tests/test_readme.py`` runs the README's: a block after ``<!-- network -->`` needs the
internet and must fail fast with ``feeds.FeedError``/``feeds.DataError`` offline. Research
specs shown as ```yaml blocks must pass the spec's validation.
"""

from __future__ import annotations

import re
import socket
import sys
import time
import types
import warnings
from pathlib import Path

import pytest

import feeds
from tests.test_readme import FAIL_FAST_S, _offline_getaddrinfo, python_blocks

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "python" in p.read_text(encoding="utf-8"))
_YAML = re.compile(r"^```yaml[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def test_the_site_builds_strictly(tmp_path, monkeypatch):
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    monkeypatch.chdir(ROOT)  # as `make docs` runs it: the snippets' and hooks' paths
    config = load_config(str(ROOT / "mkdocs.yml"), site_dir=str(tmp_path / "site"),
                         strict=True)
    build(config)  # raises on any warning (strict)
    site = tmp_path / "site"
    assert (site / "index.html").is_file() and (site / "api" / "feeds" / "index.html").is_file()
    api = (site / "api" / "strategies" / "index.html").read_text(encoding="utf-8")
    assert "S4DirectionalStrategy" in api and ":func:" not in api  # docstrings rendered
    results = (site / "results" / "index.html").read_text(encoding="utf-8")
    assert "results:pages" not in results  # the hook listed the generated pages


def test_every_guide_page_is_in_the_nav_and_links_its_examples():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in (DOCS / "guide").glob("*.md"):
        assert f"guide/{page.name}" in nav, page
    for script in (ROOT / "examples").glob("*.py"):
        assert f"examples/{script.name}" in (DOCS / "examples.md").read_text(encoding="utf-8")


def test_research_specs_in_the_docs_are_valid(tmp_path):
    from s4_strategies.training.research.spec import load_spec

    found = 0
    for page in DOCS.rglob("*.md"):
        for block in _YAML.findall(page.read_text(encoding="utf-8")):
            if "walk_forward:" in block:
                path = tmp_path / "spec.yaml"
                path.write_text(block, encoding="utf-8")
                load_spec(path)  # SpecError names the key
                found += 1
    assert found >= 1


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_every_python_block_runs(page, tmp_path, monkeypatch):
    import torch

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(socket, "getaddrinfo", _offline_getaddrinfo)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    name = "docs_" + re.sub(r"\W", "_", str(page.relative_to(DOCS)))
    module = types.ModuleType(name)  # backtrader looks classes' modules up
    monkeypatch.setitem(sys.modules, name, module)
    where = page.relative_to(ROOT)
    try:
        for line, code, network in python_blocks(page.read_text(encoding="utf-8")):
            compiled = compile(code, f"{where}:{line}", "exec")
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*non-interactive.*")
                if network:
                    with pytest.raises((feeds.FeedError, feeds.DataError)):
                        exec(compiled, module.__dict__)  # noqa: S102 - the docs' own code
                    elapsed = time.perf_counter() - start
                    assert elapsed < FAIL_FAST_S, f"{where}:{line}: {elapsed:.1f} s offline"
                else:
                    exec(compiled, module.__dict__)  # noqa: S102
    finally:
        torch.set_num_threads(threads)
    assert not list((tmp_path / ".cache").rglob("*.parquet"))  # nothing cached offline


def test_every_generated_block_is_on_the_page_its_script_writes(monkeypatch):
    """The scripts write their tables into docs pages (``scripts/page_block.py``); the README
    holds none of them any more."""
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import page_block

    keys = ["compare", "compare-multi", "research:equities", "live:bench",
            *(f"mm:{k}" for k in ("changes", "latency", "ticks", "bars", "bars-intensity",
                                  "tick-lean"))]
    for key in keys:
        page = page_block.page_for(key)
        text = page.read_text(encoding="utf-8")
        assert f"<!-- {key}:begin -->" in text and f"<!-- {key}:end -->" in text, (key, page)
        assert page.is_relative_to(DOCS)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert not re.search(r"<!-- [\w:-]+:begin -->", readme)
    with pytest.raises(SystemExit, match="no page holds"):
        page_block.page_for("nonsense")
