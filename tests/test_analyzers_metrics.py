"""analyzers.metrics: hand-computed values, agreement with quantstats, annualisation, edge cases."""

import json
import math
import statistics

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

import feeds
from analyzers.calendar import _BT_TIMEFRAME
from analyzers.metrics import (
    align_benchmark,
    bootstrap_sharpe_ci,
    compute_metrics,
    detect_calendar,
    infer_periods_per_year,
    json_safe,
)

qs = pytest.importorskip("quantstats")

SMALL = [0.10, -0.05, 0.02, 0.0, -0.01, 0.03]


def _series(values, start="2024-01-01", freq="D"):
    return pd.Series(values, index=pd.date_range(start, periods=len(values), freq=freq))


# ------------------------------------------------------------------ hand-computed


def test_small_series_by_hand():
    m = compute_metrics(_series(SMALL), 252)
    wealth = [1.10, 1.10 * 0.95]
    wealth += [wealth[-1] * 1.02, wealth[-1] * 1.02, wealth[-1] * 1.02 * 0.99]
    final = 1.10 * 0.95 * 1.02 * 1.0 * 0.99 * 1.03
    mean, sd = statistics.mean(SMALL), statistics.stdev(SMALL)
    assert m["total_return"] == pytest.approx(final - 1)
    assert m["cagr"] == pytest.approx(final ** (252 / 6) - 1)
    assert m["volatility"] == pytest.approx(sd * math.sqrt(252))
    assert m["sharpe"] == pytest.approx(mean / sd * math.sqrt(252))
    downside = math.sqrt((0.05**2 + 0.01**2) / 6)
    assert m["sortino"] == pytest.approx(mean / downside * math.sqrt(252))
    assert m["max_drawdown"] == pytest.approx(0.95 - 1)  # 1.10 -> 1.045
    assert m["max_drawdown_periods"] == 5  # under water from bar 2 to the end
    assert m["calmar"] == pytest.approx(m["cagr"] / 0.05)
    assert m["win_rate"] == pytest.approx(3 / 5)  # the flat period is not a loss
    assert m["profit_factor"] == pytest.approx(0.15 / 0.06)
    assert m["avg_win"] == pytest.approx(0.05) and m["avg_loss"] == pytest.approx(-0.03)
    assert m["payoff_ratio"] == pytest.approx(0.05 / 0.03)
    assert m["exposure"] == pytest.approx(5 / 6)
    assert (m["best"], m["worst"]) == (0.10, -0.05)
    assert m["n_periods"] == 6 and m["years"] == pytest.approx(6 / 252)


def test_rf_is_deannualised_per_period():
    r = _series(SMALL)
    per = 1.05 ** (1 / 365) - 1
    ex = [x - per for x in SMALL]
    m = compute_metrics(r, 365, rf=0.05)
    assert m["sharpe"] == pytest.approx(statistics.mean(ex) / statistics.stdev(ex) * math.sqrt(365))
    assert m["cagr"] == compute_metrics(r, 365)["cagr"]  # quantstats: CAGR ignores rf


def test_a_loss_in_the_first_period_is_a_drawdown():
    m = compute_metrics(_series([-0.10, 0.05]), 252)
    assert m["max_drawdown"] == pytest.approx(-0.10)


def test_benchmark_relative_by_hand():
    b = _series([0.01, -0.02, 0.03, 0.00, 0.01, -0.01])
    r = 2 * b + 0.001  # beta 2, alpha 0.001 per period
    m = compute_metrics(r, 252, benchmark=b)
    assert m["beta"] == pytest.approx(2.0)
    assert m["alpha"] == pytest.approx(0.001 * 252)
    assert m["correlation"] == pytest.approx(1.0) and m["r_squared"] == pytest.approx(1.0)
    active = (r - b).to_numpy()
    assert m["tracking_error"] == pytest.approx(active.std(ddof=1) * math.sqrt(252))
    assert m["benchmark_total_return"] == pytest.approx(float(np.prod(1 + b) - 1))


# ------------------------------------------------------------------ quantstats agreement


@pytest.mark.parametrize("ppy,rf", [(252, 0.0), (365, 0.03), (8760, 0.0)])
def test_agrees_with_quantstats(ppy, rf):
    rng = np.random.default_rng(ppy)
    idx = pd.date_range("2022-01-03", periods=600, freq="h" if ppy == 8760 else "D")
    r = pd.Series(rng.standard_t(4, 600) * 0.01 + 0.0004, idx)
    b = pd.Series(0.6 * r.to_numpy() + rng.normal(0, 0.008, 600), idx)
    m = compute_metrics(r, ppy, benchmark=b, rf=rf)
    s = qs.stats
    greeks = s.greeks(r, b, ppy)
    expected = {
        "sharpe": s.sharpe(r, rf, ppy),
        "sortino": s.sortino(r, rf, ppy),
        "volatility": s.volatility(r, ppy),
        "cagr": s.cagr(r, rf, True, ppy),
        "max_drawdown": s.max_drawdown(r),
        "calmar": s.calmar(r, periods=ppy),
        "win_rate": s.win_rate(r),
        "profit_factor": s.profit_factor(r),
        "avg_win": s.avg_win(r),
        "avg_loss": s.avg_loss(r),
        "payoff_ratio": s.payoff_ratio(r),
        "skew": s.skew(r),
        "kurtosis": s.kurtosis(r),
        "beta": greeks["beta"],
        "alpha": greeks["alpha"],
        "r_squared": s.r_squared(r, b),
        "benchmark_sharpe": s.sharpe(b, rf, ppy),
        "benchmark_max_drawdown": s.max_drawdown(b),
    }
    for key, value in expected.items():
        assert m[key] == pytest.approx(float(value), rel=1e-9, abs=1e-12), key
    # quantstats' per-period information ratio, annualised here
    assert m["information_ratio"] == pytest.approx(
        s.information_ratio(r, b) * math.sqrt(ppy), rel=1e-9
    )


def test_quantstats_table_matches_to_its_two_decimals():
    from analyzers import quantstats_table

    rng = np.random.default_rng(7)
    r = _series(rng.normal(0.001, 0.01, 300))
    b = _series(rng.normal(0.0005, 0.012, 300))
    m = compute_metrics(r, 252, benchmark=b)
    table = quantstats_table(r, b, 252)
    t = table["strategy"]
    assert t["Sharpe"] == pytest.approx(round(m["sharpe"], 2), abs=0.011)
    assert t["Sortino"] == pytest.approx(round(m["sortino"], 2), abs=0.011)
    assert t["Max Drawdown %"] == pytest.approx(100 * m["max_drawdown"], abs=0.011)
    assert t["CAGR %"] == pytest.approx(100 * m["cagr"], abs=0.011)
    assert t["Volatility (ann.) %"] == pytest.approx(100 * m["volatility"], abs=0.011)
    assert t["Profit Factor"] == pytest.approx(m["profit_factor"], abs=0.011)
    assert table["benchmark"]["Sharpe"] == pytest.approx(m["benchmark_sharpe"], abs=0.011)
    assert t["Start Period"] == "2024-01-01"


# ------------------------------------------------------------------ degenerate input


def test_all_zero_returns():
    m = compute_metrics(_series([0.0] * 50), 252, benchmark=_series([0.01, -0.01] * 25))
    assert m["total_return"] == 0 and m["cagr"] == 0 and m["max_drawdown"] == 0
    assert m["volatility"] == 0 and m["exposure"] == 0
    for key in ("sharpe", "sortino", "calmar", "win_rate", "profit_factor", "correlation"):
        assert math.isnan(m[key]), key
    assert m["beta"] == 0.0  # no co-movement with a moving benchmark
    json.dumps(json_safe(m), allow_nan=False)


def test_no_losing_period_and_very_short_series():
    m = compute_metrics(_series([0.01, 0.02, 0.0]), 252)
    assert m["profit_factor"] == math.inf and m["calmar"] == math.inf
    assert m["win_rate"] == 1.0 and math.isnan(m["avg_loss"])
    safe = json_safe(m)
    assert safe["profit_factor"] is None and safe["win_rate"] == 1.0
    one = compute_metrics(_series([0.01]), 8760)
    assert math.isnan(one["sharpe"]) and math.isnan(one["volatility"]) and one["n_periods"] == 1
    empty = compute_metrics(pd.Series([], dtype=float), 252)
    assert empty["n_periods"] == 0 and math.isnan(empty["sharpe"])
    json.dumps(json_safe([m, one, empty]), allow_nan=False)


def test_nan_and_wipeout():
    m = compute_metrics(_series([0.01, np.nan, -1.0, 0.0]), 252)
    assert m["n_periods"] == 3
    assert m["max_drawdown"] == pytest.approx(-1.0) and m["cagr"] == -1.0
    with pytest.raises(ValueError):
        compute_metrics(_series(SMALL), 0)


# ------------------------------------------------------------------ annualisation


@pytest.fixture(scope="module")
def btc_index():
    return feeds.load_embedded("bybit:BTCUSDT:60", todate="2021-03-31 23:00").index


@pytest.fixture(scope="module")
def spy_index():
    return feeds.load_embedded("yahoo:SPY:1d").index


def test_periods_per_year_from_real_data(btc_index, spy_index):
    assert infer_periods_per_year(btc_index) == 8760
    assert detect_calendar(btc_index) == "crypto"
    daily = pd.Series(1.0, btc_index).resample("D").last().index
    assert infer_periods_per_year(daily) == 365
    assert infer_periods_per_year(btc_index[::4]) == 2190
    assert infer_periods_per_year(spy_index) == 252
    assert detect_calendar(spy_index) == "equities"
    # tz-aware / naive / shifted into another zone: the same calendar
    assert infer_periods_per_year(spy_index.tz_localize(None)) == 252
    assert infer_periods_per_year(spy_index.tz_convert("Asia/Tokyo")) == 252
    tokyo_stamps = spy_index.tz_localize(None).tz_localize("Asia/Tokyo")  # Sun..Thu in UTC
    assert detect_calendar(tokyo_stamps) == "equities"
    weekly = pd.Series(1.0, spy_index).resample("W").last().index
    monthly = pd.Series(1.0, spy_index).resample("ME").last().index
    assert infer_periods_per_year(weekly) == 52 and infer_periods_per_year(monthly) == 12


def test_periods_per_year_intraday_equities():
    hours = pd.date_range("2023-01-02 14:30", "2023-03-31", freq="h", tz="UTC")
    session = hours[(hours.day_of_week < 5) & (hours.hour >= 14) & (hours.hour <= 20)]
    assert detect_calendar(session) == "equities"
    assert infer_periods_per_year(session) == 252 * 7
    assert infer_periods_per_year(session, calendar="crypto") == 8760
    # a market that opens on Sunday evening UTC is still a five-day week
    fx = pd.date_range("2023-01-01 22:00", "2023-03-31", freq="h")
    fx = fx[(fx.day_of_week < 5) | ((fx.day_of_week == 6) & (fx.hour >= 22))]
    assert detect_calendar(fx) == "equities"


def test_periods_per_year_from_timeframes():
    assert _BT_TIMEFRAME[bt.TimeFrame.Days] == pd.Timedelta(days=1)
    assert _BT_TIMEFRAME[bt.TimeFrame.Minutes] == pd.Timedelta(minutes=1)
    assert infer_periods_per_year(bt.TimeFrame.Days) == 252
    assert infer_periods_per_year(bt.TimeFrame.Days, calendar="crypto") == 365
    assert infer_periods_per_year(bt.TimeFrame.Minutes, "crypto", compression=60) == 8760
    assert infer_periods_per_year(bt.TimeFrame.Minutes, "equities", compression=60) == 252 * 7
    assert infer_periods_per_year(bt.TimeFrame.Minutes, "crypto", compression=5) == 105120
    assert infer_periods_per_year(bt.TimeFrame.Weeks) == 52
    assert infer_periods_per_year(bt.TimeFrame.Months) == 12
    assert infer_periods_per_year(bt.TimeFrame.Years) == 1
    assert infer_periods_per_year("1h", "crypto") == 8760
    assert infer_periods_per_year("4h", "crypto") == 2190
    assert infer_periods_per_year("D") == 252 and infer_periods_per_year("ME") == 12
    with pytest.raises(ValueError):
        infer_periods_per_year(bt.TimeFrame.Days, calendar="forex")
    with pytest.raises(ValueError):
        infer_periods_per_year(pd.DatetimeIndex(["2024-01-01"]))


# ------------------------------------------------------------------ benchmark alignment


def test_align_benchmark_keeps_every_hour_when_stamps_differ(btc_index):
    close = feeds.load_embedded("bybit:BTCUSDT:60", todate="2021-03-31 23:00")["close"]
    bench = close.pct_change().fillna(0.0)
    shifted = bench.copy()
    shifted.index = shifted.index + pd.Timedelta(minutes=30)  # stamped at the bar close
    strategy_index = btc_index.tz_localize(None)
    aligned = align_benchmark(shifted, strategy_index)
    assert aligned.index.equals(strategy_index)
    assert aligned.iloc[1:].notna().all() and (aligned.iloc[1:] != 0).mean() > 0.9
    total = float(np.prod(1 + aligned.dropna()))
    assert total == pytest.approx(float(np.prod(1 + shifted.iloc[:-1])), rel=1e-9)
    assert align_benchmark(bench, btc_index).equals(bench.set_axis(strategy_index))


def test_align_daily_benchmark_under_hourly_and_late_start():
    hourly = pd.date_range("2024-01-01", periods=24 * 10, freq="h")
    daily = pd.Series([0.01, -0.02, 0.03], pd.date_range("2024-01-04", periods=3, freq="D"))
    a = align_benchmark(daily, hourly)
    assert a[: "2024-01-03 23:00"].isna().all()
    assert a["2024-01-04 00:00"] == pytest.approx(0.01)
    assert a["2024-01-05 00:00"] == pytest.approx(-0.02)
    assert float(np.prod(1 + a.dropna())) == pytest.approx(1.01 * 0.98 * 1.03)
    assert (a.dropna() != 0).sum() == 3


# ------------------------------------------------------------------ bootstrap


def test_bootstrap_sharpe_ci():
    rng = np.random.default_rng(3)
    r = _series(rng.normal(0.001, 0.01, 1000))
    point = compute_metrics(r, 252)["sharpe"]
    lo, hi = bootstrap_sharpe_ci(r, 252, n=400, seed=1)
    assert lo < point < hi
    assert (lo, hi) == bootstrap_sharpe_ci(r, 252, n=400, seed=1)
    # i.i.d. data, i.i.d. bootstrap: width close to the analytic 2 * 1.96 * se
    se = math.sqrt((1 + (point / math.sqrt(252)) ** 2 / 2) / len(r)) * math.sqrt(252)
    lo1, hi1 = bootstrap_sharpe_ci(r, 252, n=400, block=1, seed=2)
    assert (hi1 - lo1) == pytest.approx(2 * 1.96 * se, rel=0.2)
    blo, bhi = bootstrap_sharpe_ci(r, 252, n=400, block=20, seed=1, method="block")
    assert blo < point < bhi
    nlo, nhi = bootstrap_sharpe_ci(r, 252, n=400, seed=1, level=0.5)
    assert lo < nlo < nhi < hi
    assert all(math.isnan(x) for x in bootstrap_sharpe_ci(_series([0.0] * 30), 252, n=50))
    assert all(math.isnan(x) for x in bootstrap_sharpe_ci(_series([0.01, 0.02]), 252, n=50))
    with pytest.raises(ValueError):
        bootstrap_sharpe_ci(r, 252, method="wild")


def test_bootstrap_blocks_widen_the_interval_under_autocorrelation():
    rng = np.random.default_rng(5)
    e = rng.normal(0, 0.01, 2000)
    ar = np.empty_like(e)
    ar[0] = e[0]
    for t in range(1, len(e)):
        ar[t] = 0.6 * ar[t - 1] + e[t]
    r = _series(ar + 0.0005)
    lo1, hi1 = bootstrap_sharpe_ci(r, 252, n=300, block=1, seed=0)
    lo2, hi2 = bootstrap_sharpe_ci(r, 252, n=300, block=50, seed=0)
    assert (hi2 - lo2) > 1.3 * (hi1 - lo1)


def test_json_safe():
    payload = {"a": np.float64("nan"), "b": [np.inf, -np.inf, np.int64(3)], "c": np.bool_(True),
               "d": pd.Timestamp("2024-01-01"), "e": _series([0.5], freq="h")}
    out = json.loads(json.dumps(json_safe(payload), allow_nan=False))
    assert out == {"a": None, "b": [None, None, 3], "c": True, "d": "2024-01-01T00:00:00",
                   "e": {"2024-01-01T00:00:00": 0.5}}


def test_bootstrap_default_block_is_politis_white():
    from arch.bootstrap import optimal_block_length

    rng = np.random.default_rng(6)
    e = rng.normal(0, 0.01, 1000)
    ar = np.empty_like(e)
    ar[0] = e[0]
    for t in range(1, len(e)):
        ar[t] = 0.7 * ar[t - 1] + e[t]
    r = _series(ar + 0.0005)
    pw = float(optimal_block_length(r.to_numpy())["stationary"].iloc[0])
    assert pw > 15  # far from round(1000 ** (1/3)) = 10, the old default
    assert bootstrap_sharpe_ci(r, 252, n=200, seed=4) == bootstrap_sharpe_ci(
        r, 252, n=200, seed=4, block=pw)
