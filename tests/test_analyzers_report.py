"""Tear sheets, metrics JSON and pictures on disk; the tear sheet in a real headless browser."""

import datetime as dt
import json
import logging
import shutil
import subprocess
import warnings

import backtrader as bt
import matplotlib
import matplotlib.image
import numpy as np
import pandas as pd
import pytest

import analyzers
import feeds
from analyzers import QuantStatsAnalyzer, quiet_fonts, write_tearsheet

qs = pytest.importorskip("quantstats")

pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")

CHROMIUM = shutil.which("chromium")


class SmaCross(bt.Strategy):
    def __init__(self):
        self.cross = bt.ind.CrossOver(bt.ind.SMA(period=10), bt.ind.SMA(period=30))

    def next(self):
        if self.cross > 0:
            self.order_target_size(target=0.9 * self.broker.getvalue() / self.data.close[0])
        elif self.cross < 0:
            self.order_target_size(target=0.0)


class NeverTrades(bt.Strategy):
    pass


@pytest.fixture(scope="module")
def btc_report(tmp_path_factory):
    """Hourly crypto through add_all(output=...) and then write_report(...)."""
    out = tmp_path_factory.mktemp("btc")
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feeds.EmbeddedData(name="bybit:BTCUSDT:60", fromdate=dt.datetime(2021, 1, 1),
                                       todate=dt.datetime(2021, 2, 28, 23)))
    cerebro.addstrategy(SmaCross)
    cerebro.broker.setcommission(commission=0.0006)
    analyzers.add_all(cerebro, output=out / "tearsheet.html", benchmark="buyhold")
    strat = cerebro.run()[0]
    written_by_stop = (out / "tearsheet.html").stat().st_mtime_ns
    report = analyzers.write_report(strat, out, cerebro=cerebro)
    return dict(out=out, strat=strat, report=report, mtime=written_by_stop)


@pytest.mark.slow
def test_report_files(btc_report):
    out, report = btc_report["out"], btc_report["report"]
    names = {"tearsheet.html", "metrics.json", "equity_drawdown.png", "cerebro.png"}
    assert {p.name for p in out.iterdir()} >= names
    assert {p.name for p in report["files"].values()} == names
    res = btc_report["strat"].analyzers.quantstats.get_analysis()
    assert report["metrics"] is res["metrics"]
    assert report["trades"] is btc_report["strat"].analyzers.tradestats.get_analysis()
    # write_report reused the tear sheet the analyzer wrote when the run stopped
    assert (out / "tearsheet.html").stat().st_mtime_ns == btc_report["mtime"]
    html = (out / "tearsheet.html").read_text(encoding="utf-8")
    assert "SmaCross vs bybit:BTCUSDT:60 buy &amp; hold" in html or \
        "SmaCross vs bybit:BTCUSDT:60 buy & hold" in html
    # hourly bars: the sheet is built from UTC days (quantstats reads every row as a day)
    assert "Periods/Year: 365" in html and "Periods/Year: 8760" not in html
    assert "compounded to 59 UTC calendar days" in html and "8760 bars a year" in html
    assert ">SmaCross<" in html and "bybit:BTCUSDT:60 buy &" in html
    assert html.count("<svg") >= 10  # the charts are embedded, not linked


def test_metrics_json_is_strict_and_complete(btc_report):
    def no_constants(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    text = (btc_report["out"] / "metrics.json").read_text()
    data = json.loads(text, parse_constant=no_constants)
    res = btc_report["strat"].analyzers.quantstats.get_analysis()
    assert data["periods_per_year"] == 8760 and data["calendar"] == "crypto"
    assert data["strategy"] == "SmaCross" and data["benchmark"] == "bybit:BTCUSDT:60 buy & hold"
    assert data["start"] == "2021-01-01T00:00:00" and data["end"] == "2021-02-28T23:00:00"
    assert data["metrics"]["sharpe"] == pytest.approx(res["metrics"]["sharpe"])
    # metrics: the bars (8760 a year); tearsheet: the sheet's daily rows, as quantstats' table
    sheet = data["tearsheet"]
    assert sheet["periods_per_year"] == 365 and sheet["n_periods"] == 59
    assert sheet["frequency"] == "1 day (UTC)"
    assert data["metrics"]["quantstats"]["Sharpe"] == pytest.approx(sheet["metrics"]["sharpe"],
                                                                    abs=0.011)
    assert data["notes"] and data["ruined_at"] is None
    assert data["trades"]["closed_trades"] > 5 and data["trades"]["fees_paid"] > 0
    assert len(data["trades"]["trades"]) == data["trades"]["closed_trades"]


def _ink(png_path):
    img = matplotlib.image.imread(png_path)[..., :3]
    return img, float((img.min(axis=2) < 0.9).mean())


def test_pictures(btc_report):
    img, ink = _ink(btc_report["out"] / "equity_drawdown.png")
    assert img.shape[0] > 400 and img.shape[1] > 800 and ink > 0.02
    red = (img[..., 0] > 0.7) & (img[..., 1] < 0.7) & (img[..., 2] < 0.7)  # drawdown fill
    assert red.sum() > 1000
    img, ink = _ink(btc_report["out"] / "cerebro.png")
    assert ink > 0.02
    assert matplotlib.get_backend().lower() == "agg"


@pytest.mark.slow
def test_daily_equities_tearsheet_for_a_strategy_that_never_trades(tmp_path):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feeds.EmbeddedData(name="yahoo:SPY:1d", todate=dt.datetime(2020, 12, 31)))
    cerebro.addstrategy(NeverTrades)
    cerebro.addanalyzer(QuantStatsAnalyzer, output=tmp_path / "spy.html", title="Flat on SPY")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No non-zero returns")  # quantstats, true here
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        warnings.filterwarnings("ignore", message="Beta is zero")
        cerebro.run()
    html = (tmp_path / "spy.html").read_text(encoding="utf-8")
    assert "Flat on SPY" in html and "Periods/Year: 252" in html and html.count("<svg") >= 10
    data = json.loads((tmp_path / "spy.metrics.json").read_text())
    assert data["metrics"]["sharpe"] is None and data["metrics"]["total_return"] == 0


@pytest.mark.slow
def test_only_font_warnings_are_silenced(tmp_path, caplog, monkeypatch):
    r = pd.Series(np.random.default_rng(0).normal(0.001, 0.01, 80),
                  pd.date_range("2024-01-01", periods=80, freq="D"))
    font_logger = logging.getLogger("matplotlib.font_manager")
    level = font_logger.level
    cache = getattr(matplotlib.font_manager.fontManager, "_findfont_cached", None)
    clear = getattr(cache, "cache_clear", lambda: None)
    # the real thing: quantstats asks for Arial, which this machine lacks
    clear()
    with caplog.at_level(logging.WARNING):
        write_tearsheet(r, tmp_path / "real.html", periods_per_year=252)
    assert "findfont" not in caplog.text
    assert font_logger.level == level  # restored afterwards
    # and a stand-in that also emits a real warning and another logger's warning
    caplog.clear()

    def fake_html(returns, benchmark=None, output=None, **kwargs):
        font_logger.warning("findfont: Font family 'Arial' not found.")
        logging.getLogger("matplotlib.axes").warning("a real matplotlib problem")
        warnings.warn("a real warning", UserWarning, stacklevel=1)
        with open(output, "w") as fh:
            fh.write("<html></html>")

    monkeypatch.setattr(qs.reports, "html", fake_html)
    with caplog.at_level(logging.WARNING), pytest.warns(UserWarning, match="a real warning"):
        write_tearsheet(r, tmp_path / "fake.html", periods_per_year=252)
    assert "findfont" not in caplog.text and "a real matplotlib problem" in caplog.text
    # outside the block font warnings are back (the control for the checks above)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        font_logger.warning("findfont: Font family 'Arial' not found.")
    assert "findfont" in caplog.text
    with quiet_fonts():
        assert font_logger.getEffectiveLevel() == logging.ERROR


def test_write_report_needs_the_analyzer(tmp_path):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feeds.EmbeddedData(name="yahoo:SPY:1d", todate=dt.datetime(2019, 3, 1)))
    cerebro.addstrategy(NeverTrades)
    strat = cerebro.run()[0]
    with pytest.raises(ValueError, match="add_all"):
        analyzers.write_report(strat, tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is not installed (apt-get install chromium; .ci/run installs it "
    "when absent), so the tear sheet cannot be opened in a headless browser here",
)
def test_tearsheet_renders_in_headless_chromium(btc_report, tmp_path):
    html = btc_report["out"] / "tearsheet.html"
    shot = tmp_path / "shot.png"
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}", "--window-size=1200,3000", html.resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.exists(), f"no screenshot (rc={proc.returncode}): {proc.stderr[-2000:]}"
    img = matplotlib.image.imread(shot)[..., :3]
    assert img.shape[:2] == (3000, 1200)
    charts = img[150:, :720]  # quantstats lays the charts out in the left column
    ink = (charts.min(axis=2) < 0.9).mean()
    colours = len(np.unique((charts * 31).astype(np.uint8).reshape(-1, 3), axis=0))
    assert ink > 0.05 and colours > 200, (ink, colours)

    def near(rgb, tol=0.16):
        return (np.abs(charts - np.asarray(rgb) / 255.0) < tol).all(axis=2).sum()

    # quantstats' palette: benchmark #FEDD78 (yellow), strategy #348DC1 (blue)
    assert near((0xFE, 0xDD, 0x78)) > 2000, "no benchmark line drawn"
    assert near((0x34, 0x8D, 0xC1)) > 2000, "no strategy line drawn"


@pytest.mark.slow
def test_benchmark_reaches_quantstats_aligned(tmp_path, monkeypatch):
    """An hourly benchmark stamped 30 minutes off arrives as a Series on the returns' index
    with every hour's value (quantstats itself would re-sample it through a daily calendar),
    compounded to UTC days like the returns (quantstats reads every row as a day)."""
    idx = pd.date_range("2024-03-01", periods=24 * 14, freq="h", tz="UTC")
    rng = np.random.default_rng(1)
    r = pd.Series(rng.normal(0, 0.002, len(idx)), idx)
    bench = pd.Series(rng.normal(0, 0.003, len(idx)), idx + pd.Timedelta(minutes=30), name="B")
    seen = {}

    def fake_html(returns, benchmark=None, output=None, **kwargs):
        seen.update(returns=returns, benchmark=benchmark, **kwargs)
        with open(output, "w") as fh:
            fh.write("<html></html>")

    monkeypatch.setattr(qs.reports, "html", fake_html)
    write_tearsheet(r, tmp_path / "t.html", benchmark=bench, periods_per_year=8760,
                    benchmark_name="BTC hold")
    got_r, got_b = seen["returns"], seen["benchmark"]
    assert got_r.index.tz is None and got_b.index.equals(got_r.index)
    assert got_b.notna().all() and got_b.name == "BTC hold"
    hourly = pd.Series(np.r_[0.0, bench.iloc[:-1].to_numpy()], r.index.tz_localize(None))
    day = hourly.index.normalize()
    np.testing.assert_allclose(got_b.to_numpy(), (1 + hourly).groupby(day).prod() - 1)
    np.testing.assert_allclose(got_r.to_numpy(),
                               (1 + r.set_axis(hourly.index)).groupby(day).prod() - 1)
    assert len(got_r) == 14  # before the benchmark's first stamp: 0 within the first day
    assert seen["periods_per_year"] == 365 and seen["match_dates"] is False
