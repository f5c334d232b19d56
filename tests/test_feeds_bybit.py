"""BybitData and fetch_bybit_klines against recorded Bybit v5 responses (offline)."""

import json
import os
import time
import urllib.parse
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd
import pytest
import responses
from pybit.exceptions import InvalidRequestError
from pybit.unified_trading import HTTP

import feeds
from feeds.bybit import check_interval, fetch_bybit_klines, load_bybit_klines
from feeds.cache import CacheWarning

FIX = Path(__file__).parent / "fixtures" / "bybit"
HOUR = pd.Timedelta(hours=1)
KLINE_URL = "https://api.bybit.com/v5/market/kline"
CACHE_FILE = "bybit_mainnet_linear_BTCUSDT_60.parquet"  # network, category, symbol, interval


def fixture(name):
    return json.loads((FIX / name).read_text())


RECORDED = fixture("kline_linear_BTCUSDT_60.json")


def recorded_frame():
    rows = RECORDED["result"]["list"]
    idx = pd.to_datetime([int(r[0]) for r in rows], unit="ms", utc=True)
    df = pd.DataFrame(
        [[float(x) for x in r[1:]] for r in rows],
        index=idx,
        columns=["open", "high", "low", "close", "volume", "turnover"],
    )
    return df.sort_index()


REC = recorded_frame()
T0, T_LAST = REC.index[0], REC.index[-1]
NOW = T_LAST + 2 * HOUR  # every recorded bar has closed


def ok(rows, category="linear", symbol="BTCUSDT"):
    return {
        "retCode": 0,
        "retMsg": "OK",
        "result": {"category": category, "symbol": symbol, "list": rows},
        "retExtInfo": {},
        "time": int(time.time() * 1000),
    }


class RecordedBybit:
    """A pybit-like session: serves the recorded rows with Bybit's kline semantics (bars with
    start in [start, end], newest first, at most ``limit``). ``script`` items (dicts or
    exceptions) are answered first, one per call; ``extra`` rows are served as if live."""

    def __init__(self, rows=None, script=(), extra=()):
        self.rows = sorted(
            list(rows if rows is not None else RECORDED["result"]["list"]) + list(extra),
            key=lambda r: -int(r[0]),
        )
        self.script = list(script)
        self.calls = []

    def get_kline(self, **kw):
        self.calls.append(kw)
        if self.script:
            item = self.script.pop(0)
            if isinstance(item, Exception):
                raise item
            return item
        rows = [r for r in self.rows if kw["start"] <= int(r[0]) <= kw["end"]]
        return ok(rows[: kw.get("limit", 200)], kw["category"], kw["symbol"])


def ms(ts):
    return int(pd.Timestamp(ts).value // 1_000_000)


def assert_same_bars(got, want):
    assert str(got.index.tz) == "UTC"
    assert got.index.is_monotonic_increasing and got.index.is_unique
    pd.testing.assert_frame_equal(got[want.columns], want, check_names=False, check_freq=False)


# -- fetching -------------------------------------------------------------------------------
def test_three_pages_newest_first_reversed():
    s = RecordedBybit()
    df = fetch_bybit_klines(s, "linear", "BTCUSDT", "60", T0, T_LAST, now=NOW)
    assert len(s.calls) == 3  # 2,050 bars at 1,000 per call
    assert [c["limit"] for c in s.calls] == [1000, 1000, 1000]
    assert s.calls[0]["end"] == ms(T_LAST) and s.calls[0]["start"] == ms(T0)
    # each next page ends just before the oldest bar of the previous one
    assert s.calls[1]["end"] == ms(REC.index[-1000]) - 1
    assert s.calls[2]["end"] == ms(REC.index[-2000]) - 1
    assert RECORDED["result"]["list"][0][0] > RECORDED["result"]["list"][-1][0]  # newest first
    assert_same_bars(df, REC)
    assert df.equals(feeds.load_embedded("bybit:BTCUSDT:60", T0, T_LAST)[df.columns])


def test_paging_is_complete_if_pages_start_at_the_range_start():
    class OldestPage(RecordedBybit):  # answers with the OLDEST `limit` bars of the range
        def get_kline(self, **kw):
            self.calls.append(kw)
            rows = [r for r in self.rows if kw["start"] <= int(r[0]) <= kw["end"]]
            return ok(rows[-kw["limit"] :] if rows else [])

    s = OldestPage()
    df = fetch_bybit_klines(s, "linear", "BTCUSDT", "60", T0, T_LAST, now=NOW)
    assert len(s.calls) == 3 and s.calls[1]["start"] == ms(REC.index[999]) + 1
    assert_same_bars(df, REC)


def test_overlapping_page_edges_are_removed():
    pages = [fixture(f"kline_page{i}_overlap.json") for i in (1, 2, 3)]
    s = RecordedBybit(script=pages)
    want = REC.iloc[:12]
    df = fetch_bybit_klines(
        s, "linear", "BTCUSDT", "60", want.index[0], want.index[-1], now=NOW, limit=5
    )
    assert len(s.calls) == 3
    assert_same_bars(df, want)


def test_conflicting_page_edges_raise():
    pages = [fixture(f"kline_page{i}_overlap.json") for i in (1, 2, 3)]
    pages[1]["result"]["list"][0][4] = "99999"  # the shared edge bar now closes elsewhere
    s = RecordedBybit(script=pages)
    with pytest.raises(feeds.DataError, match="carry different bars"):
        fetch_bybit_klines(
            s, "linear", "BTCUSDT", "60", REC.index[0], REC.index[11], now=NOW, limit=5
        )


def test_error_code_raises_feed_error_with_retcode():
    s = RecordedBybit(script=[fixture("kline_error_10001.json")])
    with pytest.raises(feeds.FeedError, match=r"retCode 10001: params error: symbol invalid"):
        fetch_bybit_klines(s, "linear", "BTCUSDTX", "60", T0, T_LAST, now=NOW)
    exc = InvalidRequestError(
        request="GET /v5/market/kline",
        message="Symbol is invalid",
        status_code=10001,
        time="00:00:00",
        resp_headers={},
    )
    with pytest.raises(feeds.FeedError, match="retCode 10001: Symbol is invalid"):
        fetch_bybit_klines(RecordedBybit(script=[exc]), "linear", "X", "60", T0, T_LAST, now=NOW)


def test_rate_limit_is_retried_with_backoff():
    limited = fixture("kline_rate_limit_10006.json")
    raised = InvalidRequestError(
        request="GET",
        message="Too many visits",
        status_code=10006,
        time="00:00:00",
        resp_headers={},
    )
    s = RecordedBybit(script=[limited, raised])
    slept = []
    df = fetch_bybit_klines(
        s, "linear", "BTCUSDT", "60", T0, T0 + 9 * HOUR, now=NOW, sleep=slept.append, backoff=0.5
    )
    assert slept == [0.5, 1.0]
    assert len(s.calls) == 3
    assert_same_bars(df, REC.iloc[:10])


def test_rate_limit_gives_up_with_clear_error():
    s = RecordedBybit(script=[fixture("kline_rate_limit_10006.json")] * 10)
    slept = []
    with pytest.raises(feeds.FeedError, match=r"rate limited \(retCode 10006.*after 3 retries"):
        fetch_bybit_klines(
            s, "linear", "BTCUSDT", "60", T0, T_LAST, now=NOW, sleep=slept.append, max_retries=3
        )
    assert slept == [1.0, 2.0, 4.0] and len(s.calls) == 4


def test_still_open_candle_is_dropped():
    open_bar = T_LAST + HOUR
    extra = [[str(ms(open_bar)), "28000", "28100", "27900", "28050", "10", "280000"]]
    s = RecordedBybit(extra=extra)
    df = fetch_bybit_klines(
        s,
        "linear",
        "BTCUSDT",
        "60",
        T_LAST - 5 * HOUR,
        None,
        now=open_bar + pd.Timedelta(minutes=30),
    )
    assert df.index[-1] == T_LAST and open_bar not in df.index
    # at exactly open + interval the candle has closed
    df = fetch_bybit_klines(
        s, "linear", "BTCUSDT", "60", T_LAST - 5 * HOUR, None, now=open_bar + HOUR
    )
    assert df.index[-1] == open_bar


def test_no_bars_is_an_error_not_an_empty_success():
    s = RecordedBybit()
    with pytest.raises(feeds.FeedError, match="no closed bars"):
        fetch_bybit_klines(s, "linear", "BTCUSDT", "60", "2020-01-01", "2020-02-01", now=NOW)


def test_interval_and_category_are_validated():
    assert check_interval(60) == "60" and check_interval("d") == "D"
    with pytest.raises(ValueError, match=r"'2h' is not one of 1, 3, 5, .* D, W, M"):
        feeds.BybitData(symbol="BTCUSDT", interval="2h", fromdate=T0)
    with pytest.raises(ValueError, match="category 'futures'"):
        feeds.BybitData(symbol="BTCUSDT", category="futures", fromdate=T0)
    with pytest.raises(ValueError, match="needs fromdate"):
        feeds.BybitData(symbol="BTCUSDT")


# -- cache ----------------------------------------------------------------------------------
def test_cache_resumes_and_asks_only_for_the_missing_ranges(tmp_path):
    first, last = REC.index[500], REC.index[1499]
    s1 = RecordedBybit()
    load_bybit_klines(s1, "linear", "BTCUSDT", "60", first, last, cache_dir=tmp_path, now=NOW)
    path = tmp_path / CACHE_FILE
    assert path.exists() and len(s1.calls) == 1

    s2 = RecordedBybit()
    df = load_bybit_klines(s2, "linear", "BTCUSDT", "60", T0, T_LAST, cache_dir=tmp_path, now=NOW)
    asked = [(c["start"], c["end"]) for c in s2.calls]
    assert asked == [(ms(T0), ms(first) - 1), (ms(last) + 1, ms(T_LAST))]
    assert_same_bars(df, REC)

    s3 = RecordedBybit()
    df = load_bybit_klines(
        s3, "linear", "BTCUSDT", "60", T0 + HOUR, T_LAST, cache_dir=tmp_path, now=NOW
    )
    assert s3.calls == [] and len(df) == len(REC) - 1


def test_interrupted_write_leaves_the_old_cache(tmp_path, monkeypatch):
    s = RecordedBybit()
    load_bybit_klines(s, "linear", "BTCUSDT", "60", T0, REC.index[99], cache_dir=tmp_path, now=NOW)
    path = tmp_path / CACHE_FILE
    before = path.read_bytes()

    real = pd.DataFrame.to_parquet

    def crash_half_way(self, target, *a, **k):
        target.write(b"PAR1 half a file")  # the temporary file, open for writing
        raise KeyboardInterrupt  # the process is stopped in the middle of the write

    monkeypatch.setattr(pd.DataFrame, "to_parquet", crash_half_way)
    with pytest.raises(KeyboardInterrupt):
        load_bybit_klines(
            RecordedBybit(),
            "linear",
            "BTCUSDT",
            "60",
            T0,
            REC.index[199],
            cache_dir=tmp_path,
            now=NOW,
        )
    assert path.read_bytes() == before
    left = [p for p in os.listdir(tmp_path) if not p.endswith(".lock")]  # and its lock
    assert left == [path.name]  # no temporary file left behind
    monkeypatch.setattr(pd.DataFrame, "to_parquet", real)

    s = RecordedBybit()
    df = load_bybit_klines(
        s, "linear", "BTCUSDT", "60", T0, REC.index[199], cache_dir=tmp_path, now=NOW
    )
    assert [(c["start"], c["end"]) for c in s.calls] == [
        (ms(REC.index[99]) + 1, ms(REC.index[199]))
    ]
    assert_same_bars(df, REC.iloc[:200])


@pytest.mark.parametrize("damage", ["garbage", "high_below_low"])
def test_corrupt_cache_is_moved_aside_and_refetched(tmp_path, damage):
    path = tmp_path / CACHE_FILE
    if damage == "garbage":
        path.write_bytes(b"this is not parquet")
    else:
        bad = REC.iloc[:10].copy()
        bad.iloc[3, bad.columns.get_loc("high")] = 1.0
        bad.to_parquet(path)
    s = RecordedBybit()
    with pytest.warns(CacheWarning, match="unusable.*moved it to"):
        df = load_bybit_klines(
            s, "linear", "BTCUSDT", "60", T0, REC.index[49], cache_dir=tmp_path, now=NOW
        )
    assert_same_bars(df, REC.iloc[:50])
    assert [(c["start"], c["end"]) for c in s.calls] == [(ms(T0), ms(REC.index[49]))]
    moved = [p for p in os.listdir(tmp_path) if ".corrupt-" in p]
    assert len(moved) == 1 and path.exists()


# -- in Cerebro -----------------------------------------------------------------------------
class Collect(bt.Strategy):
    def __init__(self):
        self.bars = []

    def next(self):
        d = self.data
        self.bars.append(
            (
                d.datetime.datetime(0),
                d.open[0],
                d.high[0],
                d.low[0],
                d.close[0],
                d.volume[0],
                d.turnover[0],
            )
        )


def run_cerebro(data):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(data)
    cerebro.addstrategy(Collect)
    return cerebro.run()[0]


def bars_as_frame(bars):
    df = pd.DataFrame(bars, columns=["dt", "open", "high", "low", "close", "volume", "turnover"])
    return df.set_index(pd.DatetimeIndex(df.pop("dt")).tz_localize("UTC"))


def test_cerebro_gets_strictly_increasing_unique_utc_bars_equal_to_recorded(tmp_path):
    s = RecordedBybit()
    data = feeds.BybitData(
        symbol="BTCUSDT",
        interval="60",
        fromdate=T0.to_pydatetime(),
        todate=T_LAST.to_pydatetime(),
        session=s,
        now=NOW,
        cache_dir=tmp_path,
    )
    strat = run_cerebro(data)
    got = bars_as_frame(strat.bars)
    assert (np.diff(got.index.asi8) > 0).all()
    assert_same_bars(got, REC)
    assert data._timeframe == bt.TimeFrame.Minutes and data._compression == 60
    assert data._name == "BTCUSDT" and not data.islive()


@responses.activate
def test_real_pybit_http_session_through_responses():
    served = []

    def kline(request):
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(request.url).query))
        served.append(q)
        rows = [
            r for r in RECORDED["result"]["list"] if int(q["start"]) <= int(r[0]) <= int(q["end"])
        ][: int(q["limit"])]
        return 200, {"Content-Type": "application/json"}, json.dumps(ok(rows))

    responses.add_callback(responses.GET, KLINE_URL, callback=kline)
    session = HTTP(testnet=False)
    data = feeds.BybitData(
        symbol="BTCUSDT",
        category="linear",
        interval="60",
        fromdate=T0.to_pydatetime(),
        todate=T_LAST.to_pydatetime(),
        session=session,
        now=NOW,
    )
    got = bars_as_frame(run_cerebro(data).bars)
    assert_same_bars(got, REC)
    assert len(served) == 3
    assert served[0] == {
        "category": "linear",
        "symbol": "BTCUSDT",
        "interval": "60",
        "start": str(ms(T0)),
        "end": str(ms(T_LAST)),
        "limit": "1000",
    }


@responses.activate
def test_real_pybit_http_errors_become_feed_errors():
    responses.add(responses.GET, KLINE_URL, json=fixture("kline_error_10001.json"))
    with pytest.raises(feeds.FeedError, match="retCode 10001: params error: symbol invalid"):
        fetch_bybit_klines(HTTP(), "linear", "NOPE", "60", T0, T_LAST, now=NOW)

    responses.replace(responses.GET, KLINE_URL, status=403, body="Forbidden")
    with pytest.raises(feeds.FeedError, match=r"after pybit's retries.*status 403"):
        fetch_bybit_klines(HTTP(), "linear", "BTCUSDT", "60", T0, T_LAST, now=NOW)


@responses.activate
def test_real_pybit_rate_limit_follows_our_policy_not_pybits(monkeypatch):
    # pybit 5.17 retries 10006 itself, sleeping (time.sleep) until the reset header with no
    # bound; our policy must be the one in force: our sleep, our attempts, retCode kept.
    import pybit._http_manager as pybit_http

    def pybit_sleeps(seconds):
        raise AssertionError(f"pybit slept {seconds} s itself")

    monkeypatch.setattr(pybit_http.time, "sleep", pybit_sleeps)
    clock = 1_700_000_000.0

    def limited(request):
        reset = int(clock * 1000) + 250  # Bybit: the limit resets in 250 ms
        headers = {"X-Bapi-Limit-Reset-Timestamp": str(reset)}
        return 200, headers, json.dumps(fixture("kline_rate_limit_10006.json"))

    responses.add_callback(responses.GET, KLINE_URL, callback=limited)
    session, slept = HTTP(max_retries=2), []
    with pytest.raises(feeds.FeedError, match=r"rate limited \(retCode 10006: Too many.*after 3 r"):
        fetch_bybit_klines(
            session, "linear", "BTCUSDT", "60", T0, T_LAST, now=NOW,
            sleep=slept.append, clock=lambda: clock, max_retries=3,
        )  # fmt: skip
    assert slept == [0.25, 0.25, 0.25] and len(responses.calls) == 4
    assert 10006 in session.retry_codes  # the caller's session is left as it was
