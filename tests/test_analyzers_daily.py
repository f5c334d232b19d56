"""The tear sheet reads every row as a day: intraday returns are compounded to UTC days for it,
and the sheet and metrics.json agree on ruin, NaN and a benchmark that starts later."""

import datetime as dt
import json
import math
import warnings

import backtrader as bt
import numpy as np
import pandas as pd
import pytest
from test_analyzers_cerebro import Scripted  # a strategy that trades on given bars

import feeds
from analyzers import QuantStatsAnalyzer, compute_metrics, write_tearsheet
from analyzers.returns import equity_returns, is_intraday, to_daily

qs = pytest.importorskip("quantstats")

pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")




def run(data, plan=((1, 0.0),), cash=10_000.0, **qs_kw):
    cerebro = bt.Cerebro(stdstats=False)
    for d in data if isinstance(data, list) else [data]:
        cerebro.adddata(d)
    cerebro.addstrategy(Scripted, plan=plan)
    cerebro.broker.setcash(cash)
    cerebro.addanalyzer(QuantStatsAnalyzer, _name="quantstats", **qs_kw)
    return cerebro.run()[0].analyzers.quantstats


def bars(closes, start="2024-01-01", freq="D"):
    idx = pd.date_range(start, periods=len(closes), freq=freq, tz="UTC")
    c = np.asarray(closes, dtype=float)
    return pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": 1.0}, index=idx)


# ------------------------------------------------------------------ pure functions


def test_to_daily_compounds_each_utc_day_by_hand():
    idx = pd.DatetimeIndex(["2024-01-01 22:00", "2024-01-01 23:00", "2024-01-02 00:00",
                            "2024-01-02 01:00"], tz="UTC")
    r = pd.Series([0.10, -0.05, 0.02, np.nan], idx, name="s")
    d = to_daily(r)
    assert list(d.index) == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-02")]
    assert d.iloc[0] == pytest.approx(1.10 * 0.95 - 1) and d.iloc[1] == pytest.approx(0.02)
    assert d.name == "s" and d.index.tz is None
    # a Tokyo stamp is another UTC day
    tokyo = pd.Series([0.01, 0.02], pd.DatetimeIndex(["2024-01-02 08:00", "2024-01-02 09:00"],
                                                     tz="Asia/Tokyo"))
    assert list(to_daily(tokyo).index) == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-02")]
    assert is_intraday(idx) and not is_intraday(tokyo.index)
    assert not is_intraday(pd.date_range("2024-01-01", periods=30, freq="D"))


def test_equity_returns_ruin_policy():
    idx = pd.date_range("2024-01-01", periods=5, freq="D")
    r, ruined = equity_returns(pd.Series([110.0, 55.0, -20.0, 40.0, 80.0], idx), 100.0)
    assert ruined == idx[2] and list(r) == pytest.approx([0.10, -0.5, -1.0])
    r, ruined = equity_returns(pd.Series([100.0, 0.0, 5.0], idx[:3]), 100.0)  # through zero
    assert ruined == idx[1] and list(r) == [0.0, -1.0]
    r, ruined = equity_returns(pd.Series([101.0, 102.0], idx[:2]), 100.0)
    assert ruined is None and r.iloc[0] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="NaN or infinite.*2024-01-02"):
        equity_returns(pd.Series([100.0, np.nan], idx[:2]), 100.0)
    with pytest.raises(ValueError, match="starting portfolio value"):
        equity_returns(pd.Series([100.0], idx[:1]), 0.0)


def test_bad_returns_are_refused_by_both_reports(tmp_path):
    idx = pd.date_range("2024-01-01", periods=4, freq="D")
    with pytest.raises(ValueError, match="NaN"):
        write_tearsheet(pd.Series([0.01, np.nan, 0.02, 0.0], idx), tmp_path / "nan.html")
    negative = pd.Series([0.01, -1.5, 0.02, 0.0], idx)
    with pytest.raises(ValueError, match="below -100 %"):
        write_tearsheet(negative, tmp_path / "neg.html")
    with pytest.raises(ValueError, match="below -100 %"):
        compute_metrics(negative, 252)
    assert not list(tmp_path.iterdir())


def test_daily_rows_reach_quantstats_unchanged(tmp_path, monkeypatch):
    r = pd.Series(np.random.default_rng(0).normal(0, 0.01, 40),
                  pd.date_range("2024-01-01", periods=40, freq="B", tz="UTC"))
    seen = {}

    def fake_html(returns, benchmark=None, output=None, **kwargs):
        seen.update(returns=returns, **kwargs)
        with open(output, "w") as fh:
            fh.write("<html><h4>x</h4></html>")

    monkeypatch.setattr(qs.reports, "html", fake_html)
    write_tearsheet(r, tmp_path / "t.html", periods_per_year=252)
    np.testing.assert_array_equal(seen["returns"].to_numpy(), r.to_numpy())
    assert seen["periods_per_year"] == 252
    assert "s4-note" not in (tmp_path / "t.html").read_text()


# ------------------------------------------------------------------ inside Cerebro


@pytest.fixture(scope="module")
def hourly(tmp_path_factory):
    out = tmp_path_factory.mktemp("hourly")
    data = feeds.EmbeddedData(name="bybit:BTCUSDT:60", fromdate=dt.datetime(2023, 1, 1),
                              todate=dt.datetime(2023, 1, 31, 23))
    an = run(data, plan=((1, 0.2),), output=out / "tearsheet.html")
    return an, out


@pytest.mark.slow
def test_hourly_sheet_is_built_from_days_and_metrics_keep_the_bars(hourly):
    an, out = hourly
    res = an.get_analysis()
    r, m, sheet = res["returns"], res["metrics"], res["tearsheet"]
    assert res["periods_per_year"] == 8760 and len(r) == 31 * 24
    assert m["sharpe"] == pytest.approx(compute_metrics(r, 8760)["sharpe"], rel=1e-12)
    days = to_daily(r)
    assert sheet["compounded"] and sheet["periods_per_year"] == 365 and len(days) == 31
    pd.testing.assert_series_equal(sheet["returns"], days)
    assert sheet["metrics"]["sharpe"] == pytest.approx(compute_metrics(days, 365)["sharpe"])
    # quantstats' "Best Day" is the best day, not the best hour
    best = m["quantstats"]["Best Day %"]
    assert best == pytest.approx(100 * days.max(), abs=0.006)
    assert abs(best - 100 * r.max()) > 0.5
    assert m["quantstats"]["Sharpe"] == pytest.approx(sheet["metrics"]["sharpe"], abs=0.006)
    html = (out / "tearsheet.html").read_text(encoding="utf-8")
    assert "Periods/Year: 365" in html and "744 bars) are compounded to 31 UTC" in html
    data = json.loads((out / "metrics.json").read_text())
    assert data["periods_per_year"] == 8760 and data["tearsheet"]["periods_per_year"] == 365
    assert data["tearsheet"]["metrics"]["sharpe"] == pytest.approx(sheet["metrics"]["sharpe"])
    assert data["notes"] == res["notes"] and len(data["notes"]) == 1


@pytest.mark.slow
def test_daily_equities_stay_as_they_are(tmp_path):
    an = run(feeds.EmbeddedData(name="yahoo:SPY:1d", todate=dt.datetime(2019, 12, 31)),
             plan=((1, 20.0),), output=tmp_path / "tearsheet.html")
    res = an.get_analysis()
    sheet = res["tearsheet"]
    assert not sheet["compounded"] and sheet["periods_per_year"] == 252 == res["periods_per_year"]
    pd.testing.assert_series_equal(sheet["returns"], res["returns"])
    assert res["notes"] == []
    html = (tmp_path / "tearsheet.html").read_text(encoding="utf-8")
    assert "Periods/Year: 252" in html and "s4-note" not in html
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data["tearsheet"]["metrics"]["sharpe"] == pytest.approx(data["metrics"]["sharpe"])


@pytest.mark.parametrize("crash", [250.0, 200.0])  # equity -5000 (negative) / exactly 0
def test_ruined_account_stops_at_minus_100_percent_in_both_outputs(tmp_path, crash):
    frame = bars([100, 100, 100, 150, crash, 120, 60, 80])
    with pytest.warns(RuntimeWarning, match="Account ruined"):
        an = run(feeds.ArrayData(dataname=frame), plan=((1, -100.0),),
                 output=tmp_path / "tearsheet.html", qs_table=True)
    res = an.get_analysis()
    r, m = res["returns"], res["metrics"]
    ruin = frame.index[4].tz_localize(None)
    assert res["ruined_at"] == ruin and r.index[-1] == ruin and r.iloc[-1] == -1.0
    assert (r > -1).iloc[:-1].all() and len(res["value"]) == len(frame)
    assert m["total_return"] == -1.0 and m["max_drawdown"] == -1.0 and m["cagr"] == -1.0
    assert m["quantstats"]["Cumulative Return %"] == pytest.approx(-100.0)
    assert m["quantstats"]["Max Drawdown %"] == pytest.approx(-100.0)
    html = (tmp_path / "tearsheet.html").read_text(encoding="utf-8")
    assert "Account ruined" in html
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data["ruined_at"] == ruin.isoformat() and data["metrics"]["total_return"] == -1.0
    assert "Account ruined" in data["notes"][0]


def test_nan_portfolio_value_is_an_error_naming_the_bar():
    frame = bars([100, 100, 101, np.nan, 103, 104]).drop(columns="volume")
    data = bt.feeds.PandasData(dataname=frame.tz_localize(None))
    with pytest.raises(ValueError, match="NaN or infinite.*2024-01-04"):
        run(data, plan=((1, 10.0),))


# ------------------------------------------------------------------ a benchmark that starts later


@pytest.mark.slow
def test_late_benchmark_series_sheet_and_json_agree():
    aapl = feeds.load_embedded("yahoo:AAPL:1d")["close"].pct_change().dropna()
    late = aapl["2020-06-01":].rename("AAPL")
    res = run(feeds.EmbeddedData(name="yahoo:SPY:1d"), plan=((1, 20.0),),
              benchmark=late).get_analysis()
    m = res["metrics"]
    for row, key in (("Sharpe", "benchmark_sharpe"), ("Cumulative Return %",
                                                      "benchmark_total_return"),
                     ("Max Drawdown %", "benchmark_max_drawdown"), ("Volatility (ann.) %",
                                                                    "benchmark_volatility")):
        scale = 100 if row.endswith("%") else 1
        assert m["quantstats_benchmark"][row] == pytest.approx(scale * m[key], abs=0.006), row
    assert m["quantstats"]["Beta"] == pytest.approx(m["beta"], abs=0.006)


def test_benchmark_feed_that_starts_later_is_bought_at_its_first_close():
    spy = feeds.EmbeddedData(name="yahoo:SPY:1d", todate=dt.datetime(2019, 12, 31))
    aapl = feeds.EmbeddedData(name="yahoo:AAPL:1d", fromdate=dt.datetime(2019, 6, 3),
                              todate=dt.datetime(2019, 12, 31))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        res = run([spy, aapl], benchmark=aapl, qs_table=False).get_analysis()
    b = res["benchmark"]
    start = pd.Timestamp("2019-06-03")
    assert res["benchmark_start"] == start
    assert b[:"2019-05-31"].isna().all() and b[start] == 0.0 and b[start:].notna().all()
    close = feeds.load_embedded("yahoo:AAPL:1d")["close"]["2019-06-03":"2019-12-31"]
    total = close.iloc[-1] / close.iloc[0] - 1
    assert res["metrics"]["benchmark_total_return"] == pytest.approx(total, rel=1e-9)
    assert not math.isnan(res["metrics"]["beta"])
