"""The market maker's own report (``analyzers.mm_report``): made for intraday runs, PnL in
quote currency, inventory, quotes and fills on the mid, markouts, fills by kind; no
quantstats tear sheet (and no annualised ratios) for a run of minutes, a note saying why."""

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from analyzers import mm_plots
from analyzers.mm_report import MIN_TEARSHEET_DAYS, format_span, tearsheet_note
from s4_strategies.apps.market_making import run_market_making

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def tick_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("mm_ticks")
    res = run_market_making("ticks", out=out, max_events=4000)
    return out, res


def test_a_tick_run_of_minutes_gets_the_market_making_report_and_no_tear_sheet(tick_report):
    out, res = tick_report
    names = {p.name for p in out.iterdir()}
    assert names == {"mm_report.html", "metrics.json", "equity_drawdown.png", "mm_metrics.json",
                     "mm_inventory.png"}  # no tearsheet.html
    assert {Path(p).name for p in res["files"]} == names
    assert (out / "mm_inventory.png").stat().st_size > 10_000
    assert json.loads((out / "mm_metrics.json").read_text())["metrics"]["total"]["reconciles"]
    metrics = json.loads((out / "metrics.json").read_text())
    (note,) = metrics["notes"]
    assert re.search(r"spans \d+ s\.", note) and f"at least {MIN_TEARSHEET_DAYS} days" in note
    assert not {"sharpe", "cagr", "sortino", "volatility", "benchmark_sharpe"} & \
        set(metrics["metrics"])
    assert "sharpe" not in res["report"]["metrics"] and "total_return" in res["report"]["metrics"]
    page = (out / "mm_report.html").read_text()
    for section in ("PnL over time", "Inventory", "Quotes and fills on the mid", "Markouts",
                    "Fills by kind"):
        assert f"<h3>{section}</h3>" in page, section
    for row in ("total PnL", "spread capture", "fills bid / ask / taker", "markout 1s bid",
                "placement→fill median (ms)", "inventory breaches", "quote currency"):
        assert row in page, row
    assert note.split(".")[0] in page
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(pngs) >= 5
    assert all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert "1970" not in page


def test_the_report_series_are_the_analyzers(tick_report):
    out, res = tick_report
    m = res["metrics"]["BTCUSDT"]
    assert res["metrics"]["total"]["reconciles"] is True
    assert m["fills_by_kind"] and sum(m["fills_by_kind"].values()) == \
        m["fills_bid"] + m["fills_ask"] + m["fills_taker"]


def _labels(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    return [t.get_text() for ax in fig.axes for t in ax.get_xticklabels() if t.get_text()]


@pytest.mark.parametrize("span, pattern", [
    (pd.Timedelta(minutes=11), r"^\d\d:\d\d:\d\d$"),
    (pd.Timedelta(days=60), r"^\d{4}-\d\d-\d\d$"),
])
def test_time_axes_read_clock_time_for_minutes_and_dates_for_months(span, pattern):
    idx = pd.date_range("2024-08-08 23:54", periods=200, end=pd.Timestamp("2024-08-08 23:54")
                        + span, tz="UTC")
    series = pd.DataFrame({"mid": np.linspace(100, 101, len(idx)), "position": 0.0,
                           "spread_pnl": 0.1, "inventory_pnl": -0.2, "fees": 0.05,
                           "pnl": -0.15}, index=idx)
    for fig in (mm_plots.figure_pnl(series), mm_plots.figure_inventory(series, 1.0)):
        labels = _labels(fig)
        assert labels and all(re.match(pattern, s) for s in labels), labels
        assert not any("1970" in s for s in labels)


def test_tear_sheet_note_and_span():
    assert format_span(650.0) == "10 min 50 s" and format_span(43.2) == "43 s"
    assert format_span(5 * 3600.0) == "5.0 hours" and format_span(366 * 86_400.0) == "366 days"
    assert "10 min 50 s" in tearsheet_note(650.0)
    assert tearsheet_note(MIN_TEARSHEET_DAYS * 86_400.0) is None


def test_busiest_window_holds_the_most_fills():
    t = pd.to_datetime([0, 1, 2, 100, 100.5, 101, 101.2, 300], unit="s", utc=True)
    fills = pd.DataFrame({"side": 1.0, "price": 1.0, "size": 1.0, "taker": False}, index=t)
    lo, hi = mm_plots.busiest_window(fills, 5.0)
    assert lo <= t[3] and hi >= t[6] and hi - lo <= pd.Timedelta(seconds=5.5)
    assert mm_plots.busiest_window(fills.iloc[:0], 5.0) is None


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install "
                    "chromium): the report cannot be opened in a headless browser here")
def test_the_report_renders_in_headless_chromium(tick_report, tmp_path):
    out, _ = tick_report
    shot = tmp_path / "shot.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
           f"--screenshot={shot}", "--window-size=1400,3600",
           (out / "mm_report.html").resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.exists(), f"no screenshot (rc={proc.returncode}): {proc.stderr[-2000:]}"
    img = matplotlib.image.imread(shot)[..., :3]
    ink = (img.min(axis=2) < 0.9).mean()

    def near(rgb, tol=0.12):
        return (np.abs(img - np.asarray(rgb) / 255.0) < tol).all(axis=2).sum()

    assert ink > 0.03, ink
    assert near((0x2C, 0xA0, 0x2C)) > 300, "no buys / bid quotes drawn"    # green
    assert near((0xD6, 0x27, 0x28)) > 300, "no sells / ask quotes drawn"   # red
    assert near((0xF0, 0xB4, 0x00)) > 100, "no note"                       # its amber bar
