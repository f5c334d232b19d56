"""Every ```python block of README.md runs as written.

The blocks run in order in one namespace (a block may continue an earlier one, as a reader
would in one session), in a temporary working directory with ``HOME`` pointed there too, so
``runs/...`` and ``~/.cache/...`` land in it. A block preceded by ``<!-- network -->`` needs
the internet: with sockets disabled it must fail fast with ``feeds.FeedError`` or
``feeds.DataError``, never hang, retry for long or substitute data.
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

README = Path(__file__).resolve().parents[1] / "README.md"
NETWORK_MARK = "<!-- network -->"
FAIL_FAST_S = 15.0
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """``(line, code, needs_network)`` of each ```python block, in order; a block needs the
    network when the last non-blank line before its fence is ``<!-- network -->``."""
    blocks = []
    for m in _FENCE.finditer(text):
        before = text[:m.start()].rstrip().splitlines()
        network = bool(before) and before[-1].strip() == NETWORK_MARK
        blocks.append((text.count("\n", 0, m.start()) + 2, m.group(1), network))
    return blocks


def test_block_extraction_and_network_marks():
    text = ("a\n\n```python\nx = 1\n```\n\n<!-- network -->\n```python\nfeeds.f()\n```\n"
            "```bash\nls\n```\n<!-- network -->\n\ntext\n```python\ny = 2\n```\n")
    assert python_blocks(text) == [(4, "x = 1\n", False), (9, "feeds.f()\n", True),
                                   (18, "y = 2\n", False)]


def test_the_readme_marks_network_blocks_and_has_no_placeholders():
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 8
    for line, code, network in blocks:
        uses_network = any(k in code for k in ("BybitData", "fetch_bybit", "YFinance",
                                               "fetch_yfinance"))
        assert uses_network == network, f"README.md line {line}: network mark"
        assert "my_dataframe)" not in code or "my_dataframe =" in code, line


def _offline_getaddrinfo(*args, **kwargs):
    raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")


@pytest.mark.slow
def test_every_readme_python_block_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    # what an offline machine does: name resolution fails with an OSError (pytest-socket's
    # own RuntimeError is not what requests, pybit or yfinance see there); sockets stay
    # disabled, so nothing can reach the network either way
    monkeypatch.setattr(socket, "getaddrinfo", _offline_getaddrinfo)
    times = []
    module = types.ModuleType("readme_blocks")  # backtrader looks classes' modules up
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    ran = failed_fast = 0
    for line, code, network in python_blocks(README.read_text(encoding="utf-8")):
        compiled = compile(code, f"README.md:{line}", "exec")
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*non-interactive.*")
            if network:
                with pytest.raises((feeds.FeedError, feeds.DataError)):
                    exec(compiled, namespace)  # noqa: S102 - the README's own code
                elapsed = time.perf_counter() - start
                assert elapsed < FAIL_FAST_S, f"README.md line {line}: {elapsed:.1f} s offline"
                failed_fast += 1
            else:
                exec(compiled, namespace)  # noqa: S102
                ran += 1
        times.append((line, round(time.perf_counter() - start, 1)))
    print("seconds per README block (line, s):", times)
    assert ran >= 4 and failed_fast >= 4
    assert (tmp_path / "runs" / "x" / "tearsheet.html").is_file()
    assert (tmp_path / "runs" / "x" / "plot.png").stat().st_size > 10_000
    assert not list((tmp_path / ".cache").rglob("*.parquet"))  # nothing cached offline


def test_license_matches_the_metadata_and_ships_with_the_docs():
    import configparser

    root = README.parent
    cfg = configparser.ConfigParser()
    cfg.read(root / "setup.cfg", encoding="utf-8")
    assert cfg["metadata"]["license"] == "MIT"
    assert cfg["metadata"]["license_files"].split() == ["LICENSE"]
    text = (root / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 s4-trading contributors" in text
    package_data = cfg["options.package_data"]["s4_strategies"]
    assert "ssm/README.md" in [x.strip() for x in package_data.split(",")]
    assert (root / "s4_strategies" / "ssm" / "README.md").is_file()
