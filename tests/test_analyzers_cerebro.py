"""QuantStatsAnalyzer and TradeStats inside a real Cerebro, on the embedded market data."""

import datetime as dt
import json
import math

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

import analyzers
import feeds
from analyzers import QuantStatsAnalyzer, TradeStats, compute_metrics, json_safe

qs = pytest.importorskip("quantstats")

pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")


class SmaCross(bt.Strategy):
    params = dict(fast=10, slow=30, frac=0.9)

    def __init__(self):
        fast, slow = bt.ind.SMA(period=self.p.fast), bt.ind.SMA(period=self.p.slow)
        self.cross = bt.ind.CrossOver(fast, slow)

    def next(self):
        if self.cross > 0:
            self.order_target_size(target=self.p.frac * self.broker.getvalue() / self.data.close[0])
        elif self.cross < 0:
            self.order_target_size(target=0.0)


class NeverTrades(bt.Strategy):
    pass


class Scripted(bt.Strategy):
    """Targets a position size on given bars: ``plan = ((bar, size), ...)``."""

    params = dict(plan=())

    def next(self):
        for bar, size in self.p.plan:
            if len(self) == bar:
                self.order_target_size(target=size)


def run(datas, strategy=SmaCross, commission=0.0, strategy_kw=None, **qs_kw):
    cerebro = bt.Cerebro(stdstats=False)
    for data in datas if isinstance(datas, (list, tuple)) else [datas]:
        cerebro.adddata(data)
    cerebro.addstrategy(strategy, **(strategy_kw or {}))
    cerebro.broker.setcash(10_000.0)
    cerebro.broker.setcommission(commission=commission)
    cerebro.addanalyzer(QuantStatsAnalyzer, _name="quantstats", **qs_kw)
    cerebro.addanalyzer(TradeStats, _name="tradestats")
    return cerebro.run()[0]


@pytest.fixture(scope="module")
def spy_run():
    return run(feeds.EmbeddedData(name="yahoo:SPY:1d"), commission=0.001)


def test_daily_equities(spy_run):
    res = spy_run.analyzers.quantstats.get_analysis()
    r, b = res["returns"], res["benchmark"]
    assert res["periods_per_year"] == 252 and res["calendar"] == "equities"
    spy = feeds.load_embedded("yahoo:SPY:1d")
    assert r.index.tz is None and r.index.equals(spy.index.tz_localize(None))
    assert b.index.equals(r.index) and b.iloc[0] == 0.0
    np.testing.assert_allclose(b.iloc[1:], spy["close"].pct_change().iloc[1:], rtol=1e-12)
    # returns chain back to the broker's final value
    assert 10_000 * float(np.prod(1 + r)) == pytest.approx(spy_run.broker.getvalue(), rel=1e-9)
    m = res["metrics"]
    for key in ("sharpe", "sortino", "max_drawdown", "calmar", "cagr", "volatility", "win_rate",
                "profit_factor"):
        assert math.isfinite(m[key]), key
    quantstats_keys = {k: m[k] for k in m if "quantstats" in k}
    assert m == {**compute_metrics(r, 252, benchmark=b), **quantstats_keys}
    assert m["sharpe"] == pytest.approx(qs.stats.sharpe(r, 0.0, 252), rel=1e-9)
    assert m["sortino"] == pytest.approx(qs.stats.sortino(r, 0.0, 252), rel=1e-9)
    assert m["max_drawdown"] == pytest.approx(qs.stats.max_drawdown(r), rel=1e-9)
    assert m["cagr"] == pytest.approx(qs.stats.cagr(r, 0.0, True, 252), rel=1e-9)
    assert m["calmar"] == pytest.approx(qs.stats.calmar(r, periods=252), rel=1e-9)
    assert m["volatility"] == pytest.approx(qs.stats.volatility(r, 252), rel=1e-9)
    assert m["win_rate"] == pytest.approx(qs.stats.win_rate(r), rel=1e-9)
    assert m["profit_factor"] == pytest.approx(qs.stats.profit_factor(r), rel=1e-9)
    assert m["benchmark_sharpe"] == pytest.approx(qs.stats.sharpe(b, 0.0, 252), rel=1e-9)
    # quantstats' full table rides along
    assert m["quantstats"]["Sharpe"] == pytest.approx(m["sharpe"], abs=0.011)
    assert m["quantstats_benchmark"]["Sharpe"] == pytest.approx(m["benchmark_sharpe"], abs=0.011)
    assert {"Smart Sharpe", "Omega", "Ulcer Index", "Kelly Criterion %"} <= set(m["quantstats"])
    assert res["strategy_name"] == "SmaCross"
    assert res["benchmark_name"] == "yahoo:SPY:1d buy & hold"
    json.dumps(json_safe(res), allow_nan=False)


def test_hourly_crypto():
    data = feeds.EmbeddedData(name="bybit:BTCUSDT:60", fromdate=dt.datetime(2021, 1, 1),
                              todate=dt.datetime(2021, 2, 28, 23))
    res = run(data, qs_table=False).analyzers.quantstats.get_analysis()
    r = res["returns"]
    assert res["periods_per_year"] == 8760 and res["calendar"] == "crypto"
    assert len(r) == 59 * 24 and r.index[1] - r.index[0] == pd.Timedelta(hours=1)
    m = res["metrics"]
    assert m["sharpe"] == pytest.approx(qs.stats.sharpe(r, 0.0, 8760), rel=1e-9)
    assert m["cagr"] == pytest.approx(qs.stats.cagr(r, 0.0, True, 8760), rel=1e-9)
    assert m["volatility"] == pytest.approx(qs.stats.volatility(r, 8760), rel=1e-9)
    assert "quantstats" not in m


def test_daily_crypto_and_explicit_annualisation():
    df = feeds.load_embedded("bybit:ETHUSDT:60", todate="2021-09-30 23:00")
    daily = df.resample("D").agg({"open": "first", "high": "max", "low": "min", "close": "last",
                                  "volume": "sum"})
    res = run(feeds.ArrayData(dataname=daily), qs_table=False).analyzers.quantstats.get_analysis()
    assert res["periods_per_year"] == 365 and res["calendar"] == "crypto"
    forced = run(feeds.ArrayData(dataname=daily), qs_table=False, periods_per_year=252,
                 calendar="equities").analyzers.quantstats.get_analysis()
    assert forced["periods_per_year"] == 252 and forced["calendar"] == "equities"
    ratio = res["metrics"]["sharpe"] / forced["metrics"]["sharpe"]
    assert ratio == pytest.approx(math.sqrt(365 / 252))


def test_tz_aware_feed():
    spy = feeds.load_embedded("yahoo:SPY:1d", todate="2020-12-31")
    local = spy.copy()
    local.index = (spy.index.tz_localize(None) + pd.Timedelta(hours=16)).tz_localize(
        "America/New_York")  # stamped at the 16:00 close, New York time
    data = feeds.ArrayData(dataname=local, tz="America/New_York")
    res = run(data, qs_table=False).analyzers.quantstats.get_analysis()
    r = res["returns"]
    assert r.index.tz is None
    assert r.index.equals(local.index.tz_convert("UTC").tz_localize(None))  # UTC, not local
    assert res["periods_per_year"] == 252 and res["calendar"] == "equities"
    assert res["benchmark"].index.equals(r.index)
    plain = run(feeds.ArrayData(dataname=spy), qs_table=False).analyzers.quantstats.get_analysis()
    np.testing.assert_allclose(r.to_numpy(), plain["returns"].to_numpy(), rtol=1e-12)


def test_a_strategy_that_never_trades():
    strat = run(feeds.EmbeddedData(name="yahoo:MSFT:1d"), strategy=NeverTrades)
    res = strat.analyzers.quantstats.get_analysis()
    m = res["metrics"]
    assert (res["returns"] == 0).all() and m["total_return"] == 0 and m["max_drawdown"] == 0
    assert math.isnan(m["sharpe"]) and math.isnan(m["win_rate"]) and m["exposure"] == 0
    assert m["benchmark_total_return"] > 1  # MSFT more than doubled over 2019-2023
    assert m["quantstats"]["Sharpe"] is None  # quantstats ran (R² patched) and printed "-"
    safe = json.loads(json.dumps(json_safe(m), allow_nan=False))
    assert safe["sharpe"] is None and safe["profit_factor"] is None
    trades = strat.analyzers.tradestats.get_analysis()
    assert trades["closed_trades"] == 0 and trades["fees_paid"] == 0 and trades["exposure"] == 0
    assert math.isnan(trades["win_rate"]) and math.isnan(trades["profit_factor"])


def test_benchmark_series_that_starts_later():
    aapl = feeds.load_embedded("yahoo:AAPL:1d")["close"].pct_change().dropna()
    late = aapl["2020-06-01":].rename("AAPL")
    res = run(feeds.EmbeddedData(name="yahoo:SPY:1d"), benchmark=late,
              qs_table=False).analyzers.quantstats.get_analysis()
    r, b = res["returns"], res["benchmark"]
    assert b.index.equals(r.index) and res["benchmark_name"] == "AAPL"
    first = late.index[0].tz_localize(None)
    assert b[b.index < first].isna().all()
    np.testing.assert_allclose(b[first:].to_numpy(), late.to_numpy(), rtol=1e-12)
    # policy (analyzers.returns): flat (0 %) before it starts, in metrics.json as on the sheet
    m = res["metrics"]
    assert res["benchmark_start"] == first
    assert m["benchmark_n_periods"] == len(r)
    flat = b.fillna(0.0)
    assert m["beta"] == pytest.approx(compute_metrics(r, 252, benchmark=flat)["beta"], rel=1e-12)
    assert m["benchmark_sharpe"] == pytest.approx(qs.stats.sharpe(flat, 0, 252))
    assert m["n_periods"] == len(r)  # the strategy keeps its whole record
    assert any("benchmark starts at 2020-06-01" in n for n in res["notes"])


def test_benchmark_feed_none_and_errors():
    spy, aapl = feeds.EmbeddedData(name="yahoo:SPY:1d"), feeds.EmbeddedData(name="yahoo:AAPL:1d")
    res = run([spy, aapl], benchmark=aapl, qs_table=False).analyzers.quantstats.get_analysis()
    close = feeds.load_embedded("yahoo:AAPL:1d")["close"]
    np.testing.assert_allclose(res["benchmark"].iloc[1:], close.pct_change().iloc[1:], rtol=1e-12)
    assert res["benchmark_name"] == "yahoo:AAPL:1d buy & hold"
    none = run(feeds.EmbeddedData(name="yahoo:SPY:1d"), benchmark=None,
               qs_table=False).analyzers.quantstats.get_analysis()
    assert none["benchmark"] is None and "beta" not in none["metrics"]
    with pytest.raises(ValueError, match="ticker strings are not downloaded"):
        run(feeds.EmbeddedData(name="yahoo:SPY:1d"), benchmark="SPY")


def _bars(closes):
    idx = pd.date_range("2024-01-01", periods=len(closes), freq="D", tz="UTC")
    c = np.asarray(closes, dtype=float)
    return pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": 1.0}, idx)


def test_trade_stats_by_hand():
    closes = [100, 101, 102, 103, 104, 100, 98, 96, 97, 99]
    # market orders fill at the next bar's open (= close here)
    plan = ((2, 10), (4, 0), (6, 5), (8, 0))  # len(self) == bar -> fills on bar index `bar`
    strat = run(feeds.ArrayData(dataname=_bars(closes)), strategy=Scripted, commission=0.001,
                strategy_kw=dict(plan=plan), benchmark=None, qs_table=False)
    t = strat.analyzers.tradestats.get_analysis()
    first = (104 - 102) * 10 - 0.001 * (1020 + 1040)  # 17.94
    second = (97 - 98) * 5 - 0.001 * (490 + 485)  # -5.975
    assert t["closed_trades"] == 2 and t["won"] == 1 and t["lost"] == 1
    assert [x["pnl_net"] for x in t["trades"]] == pytest.approx([first, second])
    assert t["win_rate"] == 0.5
    assert t["profit_factor"] == pytest.approx(first / -second)
    assert t["avg_win"] == pytest.approx(first) and t["avg_loss"] == pytest.approx(second)
    assert t["expectancy"] == pytest.approx((first + second) / 2)
    assert t["fees_paid"] == pytest.approx(0.001 * (1020 + 1040 + 490 + 485))
    assert t["traded_notional"] == pytest.approx(1020 + 1040 + 490 + 485)
    assert t["orders"] == 4 and t["open_trades"] == 0
    assert t["exposure"] == pytest.approx(4 / 10)  # in the market on bars 2, 3, 6, 7
    assert t["trades"][0]["bars"] == 2 and t["trades"][0]["open"] == dt.datetime(2024, 1, 3)
    res = strat.analyzers.quantstats.get_analysis()
    assert res["metrics"]["total_return"] == pytest.approx((first + second) / 10_000)
    json.dumps(json_safe(t), allow_nan=False)


def test_add_all_registers_both():
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feeds.ArrayData(dataname=_bars([100, 101, 99, 102])))
    cerebro.addstrategy(NeverTrades)
    assert analyzers.add_all(cerebro, benchmark=None, qs_table=False) is cerebro
    strat = cerebro.run()[0]
    assert isinstance(strat.analyzers.quantstats, QuantStatsAnalyzer)
    assert isinstance(strat.analyzers.tradestats, TradeStats)
    assert analyzers.find_analyzer(strat, TradeStats) is strat.analyzers.tradestats


def test_a_single_bar_and_output(tmp_path):
    with pytest.warns(RuntimeWarning, match="no tear sheet"):
        strat = run(feeds.ArrayData(dataname=_bars([100.0])), strategy=NeverTrades,
                    output=tmp_path / "tearsheet.html")
    res = strat.analyzers.quantstats.get_analysis()
    assert len(res["returns"]) == 1 and res["periods_per_year"] == 252
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data["metrics"]["n_periods"] == 1 and data["metrics"]["sharpe"] is None
    assert not (tmp_path / "tearsheet.html").exists()
