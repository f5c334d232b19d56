"""Every script in examples/ runs as a user runs it (``python examples/NAME.py`` in a fresh
folder), and the docs link each one. The shadow-mode example runs against recorded candles
through the Bybit clients it takes as arguments; nothing leaves the machine."""

from __future__ import annotations

import importlib.util
import json
import re
import runpy
import sys
from pathlib import Path

import pandas as pd
import pytest

import feeds
from tests.live_helpers import FrameKlines, FrameKlineSocket

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
#: example -> the arguments the test gives it (what its docstring tells a user to run)
RUNS = {
    "first_backtest": [],
    "own_csv": [],
    "own_strategy": [],
    "multi_asset": ["--tiny"],
    "market_making_ticks": [],
    "research_spec": [],
    "shadow_mode": None,  # run through main() with recorded candles, below
}


@pytest.fixture
def user_folder(tmp_path, monkeypatch):
    """A fresh working folder, one torch thread (the cores are shared), the argv restored."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    yield tmp_path
    torch.set_num_threads(threads)


def run_example(name, args):
    sys.argv = [str(EXAMPLES / f"{name}.py"), *args]
    return runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name="__main__")


def test_every_example_is_run_here_and_linked_from_the_docs():
    scripts = sorted(p.stem for p in EXAMPLES.glob("*.py"))
    assert scripts == sorted(RUNS)
    page = (ROOT / "docs" / "examples.md").read_text(encoding="utf-8")
    for name in scripts:
        assert f"examples/{name}.py" in page, f"docs/examples.md does not link {name}.py"
        doc = (EXAMPLES / f"{name}.py").read_text(encoding="utf-8")
        assert doc.startswith('"""') and f"python examples/{name}.py" in doc, name


@pytest.mark.parametrize("name", [n for n, a in RUNS.items() if a is not None])
def test_example_runs(name, user_folder, capsys):
    run_example(name, RUNS[name])
    out = capsys.readouterr().out
    folder = user_folder / "runs" / "examples"
    if name == "first_backtest":
        files = {p.name for p in (folder / "first_backtest").iterdir()}
        assert {"tearsheet.html", "metrics.json", "equity_drawdown.png"} <= files
        assert re.search(r"final value [\d,.]+  Sharpe -?\d", out)
    elif name == "own_csv":
        assert "1,464 bars, 2024-03-01 00:00:00+00:00" in out and "final value" in out
    elif name == "own_strategy":
        assert "closed trades" in out and "last forecast: signal" in out
    elif name == "multi_asset":
        assert (folder / "multi_asset" / "multi.pt").is_file() and "rebalances" in out
    elif name == "market_making_ticks":
        assert "spread capture" in out and "reconciles with the broker's value change: True" in out
        assert (folder / "market_making" / "mm_inventory.png").is_file()
    elif name == "research_spec":
        assert (folder / "research" / "report.md").is_file() and "Selected on validation" in out


def test_own_csv_reads_a_file_given_on_the_command_line(user_folder, capsys):
    eth = feeds.load_embedded("bybit:ETHUSDT:60", "2024-05-01", "2024-05-31 23:00")
    path = user_folder / "mine.csv"  # ISO text with a zone, lower-case columns, a 'date' column
    eth[["open", "high", "low", "close", "volume"]].rename_axis("date").to_csv(path)
    run_example("own_csv", [str(path)])
    assert f"{path}: 744 bars, 2024-05-01 00:00:00+00:00" in capsys.readouterr().out


def test_shadow_mode_against_recorded_candles(user_folder, capsys, monkeypatch):
    frame = feeds.load_embedded("bybit:BTCUSDT:60", "2024-02-01", "2024-03-15")
    frame = frame[["open", "high", "low", "close", "volume"]]
    k = 250  # history (the model warms up in 169 bars); the rest arrives as live candles
    spec = importlib.util.spec_from_file_location("shadow_mode", EXAMPLES / "shadow_mode.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "shadow_mode", module)  # backtrader looks classes up
    spec.loader.exec_module(module)
    strat = module.main(session=FrameKlines(frame), ws_factory=FrameKlineSocket(frame.iloc[k:]),
                           now=frame.index[k], backfill=k, stop_after=12, qcheck=0.02)
    out = capsys.readouterr().out
    assert len(re.findall(r"^2024-\d\d-\d\d \d\d:00 close .* \| signal ", out, re.M)) == 12
    journal = [json.loads(line) for line in
               (user_folder / "runs/examples/shadow/journal.jsonl").read_text().splitlines()]
    placed = [pd.Timestamp(r["bar"]) for r in journal if r["status"] == "Submitted"]
    assert all(t >= frame.index[k] for t in placed)  # never an order on a backfilled bar
    assert (user_folder / "runs/examples/shadow/state.json").is_file()
    assert strat.broker.getvalue() > 0
