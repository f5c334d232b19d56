"""Bybit history that is complete and is what it says: paging until the range is covered,
the project's rate-limit policy through the real pybit client, and a cache keyed and
labelled by network, category, symbol and interval (offline, recorded responses)."""

import json
import os
import time
import urllib.parse
from pathlib import Path

import pandas as pd
import pytest
import responses
from pybit.unified_trading import HTTP

import feeds
from feeds.bybit_rest import fetch_bybit_klines, load_bybit_klines, network_of
from feeds.cache import STALE_TMP, CacheWarning, cache_path

FIX = Path(__file__).parent / "fixtures" / "bybit"
HOUR = pd.Timedelta(hours=1)
KLINE_URL = "https://api.bybit.com/v5/market/kline"
TESTNET_URL = "https://api-testnet.bybit.com/v5/market/kline"
ROWS = json.loads((FIX / "kline_linear_BTCUSDT_60.json").read_text())["result"]["list"]
LIMITED = json.loads((FIX / "kline_rate_limit_10006.json").read_text())


def frame(rows):
    idx = pd.to_datetime([int(r[0]) for r in rows], unit="ms", utc=True)
    cols = ["open", "high", "low", "close", "volume", "turnover"]
    return pd.DataFrame([[float(x) for x in r[1:]] for r in rows], index=idx, columns=cols)


REC = frame(ROWS).sort_index()
T0, T_LAST = REC.index[0], REC.index[-1]
NOW = T_LAST + 2 * HOUR
CLOCK = 1_700_000_000.0  # the wall clock the rate-limit tests run at (epoch seconds)


def ms(ts):
    return int(pd.Timestamp(ts).value // 1_000_000)


def ok(rows):
    return {"retCode": 0, "retMsg": "OK", "result": {"list": rows}, "retExtInfo": {}, "time": 0}


class Server:
    """Bybit kline semantics (bars with start in [start, end], newest first), but at most
    ``cap`` rows whatever ``limit`` asks; ``oldest`` serves the oldest rows of the range
    instead, ``ignore_range`` serves the newest rows of all, ``scale`` multiplies prices."""

    def __init__(self, cap=1000, oldest=False, ignore_range=False, scale=1.0, testnet=None):
        self.cap, self.oldest, self.ignore_range = cap, oldest, ignore_range
        self.rows = [[r[0], *(str(float(x) * scale) for x in r[1:5]), *r[5:]] for r in ROWS]
        self.calls = []
        if testnet is not None:
            self.testnet = testnet

    def get_kline(self, **kw):
        self.calls.append(kw)
        rows = (
            self.rows
            if self.ignore_range
            else [r for r in self.rows if kw["start"] <= int(r[0]) <= kw["end"]]
        )
        n = min(kw["limit"], self.cap)
        return ok(rows[-n:] if self.oldest else rows[:n])


# -- paging ---------------------------------------------------------------------------------
@pytest.mark.parametrize("oldest", [False, True])
def test_short_pages_do_not_truncate_history(oldest):
    s = Server(cap=200, oldest=oldest)  # a server that sends 200 rows when asked for 1000
    df = fetch_bybit_klines(s, "linear", "BTCUSDT", "60", T0, T_LAST, now=NOW)
    pd.testing.assert_frame_equal(df, REC, check_names=False, check_freq=False)
    assert len(s.calls) == 11  # ceil(2050 / 200), and no call beyond the range's edges
    assert all(c["limit"] == 1000 for c in s.calls)


def test_a_range_wider_than_the_data_costs_one_empty_answer_per_open_side():
    s = Server(cap=300)
    df = fetch_bybit_klines(
        s, "linear", "BTCUSDT", "60", T0 - 30 * 24 * HOUR, T_LAST + 3 * HOUR, now=NOW + 3 * HOUR
    )
    pd.testing.assert_frame_equal(df, REC, check_names=False, check_freq=False)
    assert len(s.calls) == 7 + 2  # ceil(2050 / 300) pages, and one empty answer per side
    asked = [(c["start"], c["end"]) for c in s.calls]
    assert (ms(T0 - 30 * 24 * HOUR), ms(T0) - 1) in asked  # before the oldest bar: empty
    assert asked[-1] == (ms(T_LAST) + 1, ms(T_LAST + 3 * HOUR))  # after the newest: empty


def test_a_server_that_ignores_the_range_raises_instead_of_truncating():
    s = Server(cap=200, ignore_range=True)
    with pytest.raises(feeds.FeedError, match="answered 200 bars for .* none of them inside"):
        fetch_bybit_klines(s, "linear", "BTCUSDT", "60", T0, T_LAST, now=NOW)


# -- rate limits through the real pybit HTTP ------------------------------------------------
@pytest.fixture
def no_pybit_sleep(monkeypatch):
    import pybit._http_manager as pybit_http

    def pybit_sleeps(seconds):
        raise AssertionError(f"pybit slept {seconds} s itself")

    monkeypatch.setattr(pybit_http.time, "sleep", pybit_sleeps)


def limited_then_ok(reset_in_ms, times=1):
    """A callback: ``times`` rate-limit answers with a reset header, then the klines."""
    state = {"n": 0}

    def answer(request):
        state["n"] += 1
        if state["n"] <= times:
            headers = {"X-Bapi-Limit-Reset-Timestamp": str(int(CLOCK * 1000) + reset_in_ms)}
            return 200, headers, json.dumps(LIMITED)
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(request.url).query))
        rows = [r for r in ROWS if int(q["start"]) <= int(r[0]) <= int(q["end"])]
        return 200, {}, json.dumps(ok(rows[: int(q["limit"])]))

    return answer


def fetch_real(session=None, **kw):
    return fetch_bybit_klines(
        session or HTTP(), "linear", "BTCUSDT", "60", T0, T0 + 9 * HOUR, now=NOW,
        clock=lambda: CLOCK, **kw,
    )  # fmt: skip


@responses.activate
def test_rate_limit_waits_until_bybits_reset_then_serves(no_pybit_sleep):
    responses.add_callback(responses.GET, KLINE_URL, callback=limited_then_ok(1500, times=2))
    slept = []
    df = fetch_real(sleep=slept.append)
    assert slept == [1.5, 1.5] and len(responses.calls) == 3
    pd.testing.assert_frame_equal(df, REC.iloc[:10], check_names=False, check_freq=False)


@responses.activate
def test_far_future_reset_is_a_clear_error_not_a_long_sleep(no_pybit_sleep):
    responses.add_callback(responses.GET, KLINE_URL, callback=limited_then_ok(3_600_000))
    slept = []
    with pytest.raises(feeds.FeedError, match=r"retCode 10006.*3600 s from now, beyond the retry"):
        fetch_real(sleep=slept.append)
    assert slept == [] and len(responses.calls) == 1


@responses.activate
def test_total_wait_is_bounded(no_pybit_sleep):
    responses.add_callback(responses.GET, KLINE_URL, callback=limited_then_ok(40_000, times=5))
    slept = []
    with pytest.raises(feeds.FeedError, match=r"retCode 10006.*max_wait=60.0 s, 40.0 s already"):
        fetch_real(sleep=slept.append, max_wait=60.0)
    assert slept == [40.0] and len(responses.calls) == 2


@responses.activate
def test_reset_in_the_past_is_a_clear_clock_skew_error(no_pybit_sleep):
    responses.add_callback(responses.GET, KLINE_URL, callback=limited_then_ok(-3_600_000))
    with pytest.raises(feeds.FeedError, match=r"retCode 10006.*3600 s in the past.*clock skew"):
        fetch_real(sleep=pytest.fail)


@responses.activate
def test_unreadable_reset_header_is_a_clear_error(no_pybit_sleep):
    headers = {"X-Bapi-Limit-Reset-Timestamp": "soon"}
    responses.add(responses.GET, KLINE_URL, json=LIMITED, headers=headers)
    with pytest.raises(feeds.FeedError, match=r"retCode 10006.*unreadable .*'soon'"):
        fetch_real(sleep=pytest.fail)


@pytest.mark.parametrize("body", [[1, 2], "maintenance", 42, None])
@responses.activate
def test_a_json_body_that_is_not_an_object_is_a_feed_error(body):
    responses.add(responses.GET, KLINE_URL, body=json.dumps(body), content_type="application/json")
    with pytest.raises(feeds.FeedError, match="unexpected response body, JSON .*not an object"):
        fetch_real(sleep=pytest.fail)


@responses.activate
def test_pybit_returning_headers_keeps_the_reset_header(no_pybit_sleep):
    responses.add_callback(responses.GET, KLINE_URL, callback=limited_then_ok(500))
    slept = []
    session = HTTP(return_response_headers=True, ignore_codes={10006})  # 10006 comes back as data
    df = fetch_real(session, sleep=slept.append)
    assert slept == [0.5] and len(df) == 10


# -- the cache knows what it holds ----------------------------------------------------------
def load(session, tmp_path, symbol="BTCUSDT", **kw):
    return load_bybit_klines(
        session, "linear", symbol, "60", T0, REC.index[99], cache_dir=tmp_path, now=NOW, **kw
    )


def test_testnet_and_mainnet_bars_never_share_a_cache_file(tmp_path):
    testnet = Server(scale=2.0, testnet=True)  # testnet prices are not mainnet prices
    load(testnet, tmp_path)
    mainnet = Server(testnet=False)
    df = load(mainnet, tmp_path)
    assert len(mainnet.calls) == 1  # not served from the testnet file
    pd.testing.assert_frame_equal(df, REC.iloc[:100], check_names=False, check_freq=False)
    assert sorted(p for p in os.listdir(tmp_path) if not p.endswith(".lock")) == [
        "bybit_mainnet_linear_BTCUSDT_60.parquet",
        "bybit_testnet_linear_BTCUSDT_60.parquet",
    ]
    again = Server(scale=2.0)
    df = load(again, tmp_path, testnet=True)  # a session without its own flag: say it
    assert again.calls == [] and df["close"].iloc[0] == 2 * REC["close"].iloc[0]


def test_testnet_flag_that_contradicts_the_session_is_refused(tmp_path):
    assert network_of(HTTP(testnet=True)) == "testnet" and network_of(Server()) == "mainnet"
    assert network_of(HTTP(demo=True)) == "mainnet-demo"
    with pytest.raises(ValueError, match="testnet=False but the session talks to Bybit's testnet"):
        load(Server(testnet=True), tmp_path, testnet=False)
    assert os.listdir(tmp_path) == []


def test_a_file_holding_another_symbol_is_moved_aside_not_served(tmp_path):
    load(Server(scale=0.05), tmp_path, symbol="ETHUSDT")
    btc_file = tmp_path / "bybit_mainnet_linear_BTCUSDT_60.parquet"
    os.replace(tmp_path / "bybit_mainnet_linear_ETHUSDT_60.parquet", btc_file)
    s = Server()
    with pytest.warns(CacheWarning, match="holds .*'symbol': 'ETHUSDT'.*moved it to"):
        df = load(s, tmp_path)
    assert len(s.calls) == 1
    pd.testing.assert_frame_equal(df, REC.iloc[:100], check_names=False, check_freq=False)
    moved = [p for p in os.listdir(tmp_path) if ".foreign-" in p]
    assert len(moved) == 1  # kept, as it was: the ETHUSDT bars
    kept = pd.read_parquet(tmp_path / moved[0])
    assert kept["close"].to_numpy() == pytest.approx(0.05 * REC["close"].iloc[:100].to_numpy())
    assert pd.read_parquet(btc_file).attrs["s4_cache"] == {
        "source": "bybit", "network": "mainnet", "category": "linear",
        "symbol": "BTCUSDT", "interval": "60",
    }  # fmt: skip


def test_a_file_that_records_nothing_is_not_trusted(tmp_path):
    (REC.iloc[:100] * 3).to_parquet(tmp_path / "bybit_mainnet_linear_BTCUSDT_60.parquet")
    s = Server()
    with pytest.warns(CacheWarning, match="records no series"):
        df = load(s, tmp_path)
    assert len(s.calls) == 1 and df["close"].equals(REC["close"].iloc[:100])


def test_unsafe_characters_never_make_two_series_share_a_file(tmp_path):
    assert cache_path(tmp_path, "bybit", "BTC/USDT") != cache_path(tmp_path, "bybit", "BTC-USDT")
    assert cache_path(tmp_path, "bybit", "BTC-USDT").name == "bybit_BTC-USDT.parquet"


def test_stale_temporary_files_are_cleaned(tmp_path):
    old = time.time() - STALE_TMP - 60
    stale = tmp_path / ".bybit_mainnet_linear_BTCUSDT_60.parquet.k3j_x9a2.tmp"
    other = tmp_path / ".yahoo_AAPL_1d_adj.parquet.abcd1234.tmp"  # another series, also stale
    fresh = tmp_path / ".bybit_mainnet_linear_BTCUSDT_60.parquet.zz99yy88.tmp"  # young, killed
    notes = tmp_path / ".notes.tmp"  # not ours
    for p in (stale, other, fresh, notes):
        p.write_bytes(b"PAR1 half")
    for p in (stale, other, notes):
        os.utime(p, (old, old))
    load(Server(), tmp_path)
    left = sorted(p for p in os.listdir(tmp_path) if not p.endswith(".lock"))
    # the file's own temporaries go however young (its lock says nobody is writing it),
    # another series' only when stale, and a file that is not ours stays
    assert left == sorted([notes.name, "bybit_mainnet_linear_BTCUSDT_60.parquet"])


@responses.activate
def test_bybit_data_on_testnet_caches_as_testnet(tmp_path):
    responses.add_callback(responses.GET, TESTNET_URL, callback=limited_then_ok(0, times=0))
    data = feeds.BybitData(
        symbol="BTCUSDT", interval="60", testnet=True, cache_dir=tmp_path, now=NOW,
        fromdate=T0.to_pydatetime(), todate=REC.index[9].to_pydatetime(),
    )  # fmt: skip
    data.start()
    assert [p for p in os.listdir(tmp_path) if not p.endswith(".lock")] == [
        "bybit_testnet_linear_BTCUSDT_60.parquet"]
    assert len(responses.calls) == 1
