"""Funding of the perpetual: when Bybit charges which position (pure), and the funding rate
history paged, cached and checked from recorded-style Bybit v5 answers (offline)."""

import numpy as np
import pandas as pd
import pytest
import responses
from pybit.unified_trading import HTTP

import feeds
from feeds.cache import CacheWarning
from feeds.funding import fetch_funding_rates, load_funding_rates
from s4_strategies.training.evaluation import backtest_positions
from s4_strategies.training.funding import (
    DEFAULT_FUNDING_RATE,
    FUNDING_INTERVAL,
    funding_costs,
    funding_per_bar,
)

R = DEFAULT_FUNDING_RATE
HOUR = pd.Timedelta(hours=1)


def hours(start, n):
    return pd.date_range(start, periods=n, freq="h", tz="UTC")


# -- timing (pure) ---------------------------------------------------------------------------
def test_default_rate_is_bybits_baseline():
    assert DEFAULT_FUNDING_RATE == 0.0001 and FUNDING_INTERVAL == 8 * HOUR


def test_a_long_across_one_midnight_pays_one_rate_in_the_next_return():
    idx = hours("2024-01-01 22:00", 4)  # opens 22:00, 23:00, 00:00, 01:00
    # pos[0] is held from the close of bar 0 (23:00) to the close of bar 1 (00:00)
    np.testing.assert_allclose(funding_costs(idx, [1, 0, 0, 0], R), [0, R, 0, 0])
    # pos[1] is taken at 00:00, after the 00:00 funding: held 00:00-01:00, pays nothing
    np.testing.assert_allclose(funding_costs(idx, [0, 1, 0, 0], R), [0, 0, 0, 0])
    np.testing.assert_allclose(funding_costs(idx, [-1, 0, 0, 0], R), [0, -R, 0, 0])  # receives
    np.testing.assert_allclose(funding_costs(idx, [1, 0, 0, 0], -R), [0, -R, 0, 0])
    np.testing.assert_allclose(funding_costs(idx, [0, 0, 0, 0], R), 0)  # flat pays nothing
    # the cost sits where backtest_positions books pos[0]'s return and its fee
    close = np.array([100.0, 101.0, 102.0, 103.0])
    net = backtest_positions(close, [1, 0, 0, 0], 0.0)["returns"] - funding_costs(
        idx, [1, 0, 0, 0], R)
    assert net[1] == pytest.approx(0.01 - R) and net[2] == 0


def test_buy_and_hold_for_a_day_pays_three_rates():
    idx = hours("2024-03-01 00:00", 25)
    cost = funding_costs(idx, np.ones(25), R)
    assert cost.sum() == pytest.approx(3 * R)
    assert np.flatnonzero(cost).tolist() == [7, 15, 23]  # returns ending 08:00, 16:00, 00:00


def test_constant_and_series_agree_and_each_mark_reaches_its_bar():
    rng = np.random.default_rng(0)
    idx = hours("2024-01-01 05:00", 24 * 10)
    pos = rng.choice([-1.0, 0.0, 0.5, 1.0], len(idx))
    marks = pd.date_range("2023-12-31", "2024-01-12", freq="8h", tz="UTC")
    flat = pd.Series(R, index=marks)
    np.testing.assert_allclose(funding_costs(idx, pos, flat), funding_costs(idx, pos, R))
    varied = pd.Series(rng.normal(0, 1e-4, len(marks)), index=marks).sample(frac=1, random_state=1)
    want = np.zeros(len(idx))
    for t, rate in varied.items():  # the bar whose held interval (open+1h, next open+1h] has t
        for b in range(len(idx) - 1):
            if idx[b] + HOUR < t <= idx[b + 1] + HOUR:
                want[b + 1] += pos[b] * rate
    np.testing.assert_allclose(funding_costs(idx, pos, varied), want, atol=1e-15)


def test_missing_bars_and_missing_rates():
    idx = hours("2024-01-01 05:00", 6).delete(2)  # 07:00 is missing: pos[1] held 07:00-09:00
    assert funding_per_bar(idx, R, bar=HOUR).tolist() == [0, R, 0, 0, 0]
    with pytest.raises(ValueError, match="miss 1 of the 1 8-hourly marks.*2024-01-01 08:00"):
        funding_costs(idx, np.ones(5), pd.Series([R], index=[pd.Timestamp("2024-01-02")]))
    with pytest.raises(ValueError, match="strictly increasing"):
        funding_per_bar(idx[::-1], R)
    assert funding_costs(idx[:1], [1.0], R).tolist() == [0.0]


# -- Bybit history (recorded-style answers) --------------------------------------------------
T0 = pd.Timestamp("2024-01-01", tz="UTC")
MARKS = [T0 + i * FUNDING_INTERVAL for i in range(500)]
ROWS = [{"symbol": "BTCUSDT", "fundingRate": f"{0.0001 + 1e-6 * (i % 7 - 3):.6f}",
         "fundingRateTimestamp": str(int(t.value // 1_000_000))} for i, t in enumerate(MARKS)]
ROWS.reverse()  # Bybit: newest first
EXPECTED = pd.Series([float(r["fundingRate"]) for r in ROWS][::-1], index=pd.DatetimeIndex(MARKS))
T_LAST = MARKS[-1]
NOW = T_LAST + 2 * HOUR


def ms(ts):
    return int(pd.Timestamp(ts).value // 1_000_000)


def ok(rows):
    return {"retCode": 0, "retMsg": "OK", "result": {"category": "linear", "list": rows},
            "retExtInfo": {}, "time": 1_700_000_000_000}


class FakeBybit:
    """pybit-like: rates with timestamp in [startTime, endTime], newest first, at most
    ``limit``; ``script`` answers (dicts) come first, one per call."""

    def __init__(self, rows=ROWS, script=(), ignore_range=False, testnet=None):
        self.rows, self.script, self.ignore_range, self.calls = rows, list(script), ignore_range, []
        if testnet is not None:
            self.testnet = testnet

    def get_funding_rate_history(self, **kw):
        self.calls.append(kw)
        if self.script:
            return self.script.pop(0)
        rows = self.rows if self.ignore_range else [
            r for r in self.rows if kw["startTime"] <= int(r["fundingRateTimestamp"])
            <= kw["endTime"]]
        return ok(rows[: kw["limit"]])


def assert_rates(got, want):
    assert str(got.index.tz) == "UTC" and got.index.is_monotonic_increasing
    assert got.index.is_unique and got.dtype == np.float64
    pd.testing.assert_series_equal(got, want, check_names=False, check_freq=False)


def test_pages_backwards_by_end_time_until_the_start_is_covered():
    s = FakeBybit()
    got = fetch_funding_rates(s, "linear", "BTCUSDT", T0, T_LAST, now=NOW)
    assert_rates(got, EXPECTED)
    assert [c["endTime"] for c in s.calls] == [ms(T_LAST), ms(MARKS[300]) - 1,
                                               ms(MARKS[100]) - 1]
    assert all(c["startTime"] == ms(T0) and c["limit"] == 200 for c in s.calls)
    assert all(c["category"] == "linear" and c["symbol"] == "BTCUSDT" for c in s.calls)


def test_a_wider_range_costs_one_empty_answer_per_open_side():
    s = FakeBybit()
    got = fetch_funding_rates(s, "linear", "BTCUSDT", T0 - 48 * HOUR, T_LAST + 5 * HOUR,
                              now=NOW + 5 * HOUR)
    assert_rates(got, EXPECTED) and len(s.calls) == 3 + 2
    with pytest.raises(feeds.FeedError, match="none of them inside"):
        fetch_funding_rates(FakeBybit(ignore_range=True), "linear", "BTCUSDT", T0, MARKS[10])


def test_error_body_names_the_symbol():
    err = {"retCode": 10001, "retMsg": "params error: symbol invalid", "result": {},
           "retExtInfo": {}, "time": 1}
    with pytest.raises(feeds.FeedError, match="linear/BTCUSDT: retCode 10001: params error"):
        fetch_funding_rates(FakeBybit(script=[err]), "linear", "BTCUSDT", T0, T_LAST)


@responses.activate
def test_error_body_through_the_real_pybit_client():
    url = "https://api.bybit.com/v5/market/funding/history"
    body = {"retCode": 10001, "retMsg": "params error: symbol invalid", "result": {},
            "retExtInfo": {}, "time": 1}
    responses.add(responses.GET, url, json=body)
    with pytest.raises(feeds.FeedError, match="linear/NOPEUSDT: retCode 10001"):
        load_funding_rates("NOPEUSDT", T0, T_LAST, session=HTTP(), now=NOW)
    responses.replace(responses.GET, url, json=ok(ROWS[-3:]))  # a good answer parses too
    got = load_funding_rates("BTCUSDT", T0, MARKS[2], session=HTTP(), now=NOW)
    assert_rates(got, EXPECTED.iloc[:3])
    assert "startTime=" in responses.calls[-1].request.url


@pytest.mark.parametrize("row, why", [
    ({"symbol": "BTCUSDT", "fundingRateTimestamp": "1704067200000"}, "KeyError"),
    ({"symbol": "BTCUSDT", "fundingRate": "abc", "fundingRateTimestamp": "1704067200000"},
     "could not convert"),
    ({"symbol": "ETHUSDT", "fundingRate": "0.0001", "fundingRateTimestamp": "1704067200000"},
     "ETHUSDT"),
    ({"symbol": "BTCUSDT", "fundingRate": "nan", "fundingRateTimestamp": "1704067200000"},
     "rate nan"),
    (["BTCUSDT", "0.0001"], "AttributeError"),
])
def test_malformed_rows_are_clear_errors(row, why):
    with pytest.raises(feeds.FeedError, match=f"BTCUSDT: malformed funding row .*{why}"):
        fetch_funding_rates(FakeBybit(script=[ok([row])]), "linear", "BTCUSDT", T0, T_LAST)


def test_rate_limit_is_retried_within_the_budget():
    limited = {"retCode": 10006, "retMsg": "Too many visits!", "result": {}}
    s, slept = FakeBybit(script=[limited]), []
    got = fetch_funding_rates(s, "linear", "BTCUSDT", T0, MARKS[5], sleep=slept.append)
    assert slept == [1.0] and len(s.calls) == 2 and len(got) == 6


def test_cache_hit_makes_no_calls_and_extends_only_the_missing_part(tmp_path):
    first = FakeBybit()
    got = load_funding_rates("BTCUSDT", T0, MARKS[300], session=first, cache_dir=tmp_path, now=NOW)
    assert_rates(got, EXPECTED.iloc[:301])
    assert [p.name for p in tmp_path.iterdir() if p.suffix != ".lock"] == [
        "bybit_mainnet_linear_BTCUSDT_funding.parquet"]
    again = FakeBybit()
    got = load_funding_rates("BTCUSDT", T0 + HOUR, MARKS[300], session=again,
                             cache_dir=tmp_path, now=NOW)
    assert again.calls == [] and got.index[0] == MARKS[1] and got.index[-1] == MARKS[300]
    more = FakeBybit()
    got = load_funding_rates("BTCUSDT", T0, T_LAST, session=more, cache_dir=tmp_path, now=NOW)
    assert_rates(got, EXPECTED)
    assert {c["startTime"] for c in more.calls} == {ms(MARKS[300]) + 1}
    testnet = FakeBybit(testnet=True)
    load_funding_rates("BTCUSDT", T0, MARKS[3], session=testnet, cache_dir=tmp_path, now=NOW)
    assert (tmp_path / "bybit_testnet_linear_BTCUSDT_funding.parquet").exists()


def test_recent_end_is_asked_again_and_bad_files_are_moved_aside(tmp_path):
    now = MARKS[10] + 10 * pd.Timedelta(minutes=1)  # the MARKS[10] rate may not be out yet
    load_funding_rates("BTCUSDT", T0, session=FakeBybit(rows=ROWS[-10:]), cache_dir=tmp_path,
                       now=now)
    later = FakeBybit()
    got = load_funding_rates("BTCUSDT", T0, session=later, cache_dir=tmp_path, now=now)
    assert len(later.calls) == 1 and got.index[-1] == MARKS[10]
    path = tmp_path / "bybit_mainnet_linear_BTCUSDT_funding.parquet"
    path.write_bytes(b"not parquet")
    with pytest.warns(CacheWarning, match="unusable"):
        got = load_funding_rates("BTCUSDT", T0, MARKS[5], session=FakeBybit(),
                                 cache_dir=tmp_path, now=NOW)
    assert len(got) == 6 and any(".corrupt-" in p.name for p in tmp_path.iterdir())


def test_default_session_is_built_lazily_and_empty_ranges_raise(monkeypatch):
    import pybit.unified_trading

    built = []

    def factory(**kw):
        built.append(kw)
        return FakeBybit(testnet=kw.get("testnet", False))

    monkeypatch.setattr(pybit.unified_trading, "HTTP", factory)
    got = load_funding_rates("BTCUSDT", T0, MARKS[2], now=NOW)
    assert built == [{"testnet": False}] and len(got) == 3
    with pytest.raises(feeds.FeedError, match="no funding rates"):
        load_funding_rates("BTCUSDT", T0 - 72 * HOUR, T0 - HOUR, now=NOW)
    assert load_funding_rates("BTCUSDT", T0 - 72 * HOUR, T0 - HOUR, now=NOW,
                              allow_empty=True).empty
    with pytest.raises(ValueError, match="spot has no funding"):
        load_funding_rates("BTCUSDT", T0, category="spot", session=FakeBybit())


def test_fetched_rates_feed_the_backtest_costs():
    rates = fetch_funding_rates(FakeBybit(), "linear", "BTCUSDT", T0, MARKS[9])
    idx = hours(T0, 24)
    cost = funding_costs(idx, np.ones(24), rates)
    assert cost.sum() == pytest.approx(rates.iloc[1:4].sum())  # 08:00, 16:00, 00:00
