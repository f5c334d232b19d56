"""``s4trade data download`` / ``data list``: the cache the feeds read, filled ahead of time,
in chunks that survive an interruption, resumed without asking again for what is cached.
Offline: pybit-like fakes and the real pybit client behind ``responses``."""

from __future__ import annotations

import json
import urllib.parse

import numpy as np
import pandas as pd
import pytest
import responses
from live_helpers import FrameKlines

import feeds
from feeds.download import download_funding, download_klines, list_cache, plan_chunks
from s4_strategies.apps.cli import main
from s4_strategies.apps.cli_data import download
from s4_strategies.apps.sources import load_source

NOW = pd.Timestamp("2024-06-01", tz="UTC")
KLINE_URL = "https://api.bybit.com/v5/market/kline"


def minute_bars(start="2024-01-01", n=5000, seed=0, drop=()):
    idx = pd.date_range(start, periods=n, freq="1min", tz="UTC", name="datetime")
    rng = np.random.default_rng(seed)
    close = 40_000 * np.exp(np.cumsum(rng.normal(0, 5e-4, n)))
    open_ = np.r_[close[0], close[:-1]]
    df = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.0002,
                       "low": np.minimum(open_, close) * 0.9998, "close": close,
                       "volume": rng.uniform(1, 10, n)}, index=idx)
    return df.drop(df.index[list(drop)])


class Recorder:
    """A tqdm stand-in: the totals asked for and the updates made."""

    def __init__(self):
        self.bars = []

    def __call__(self, total, desc, unit):
        self.bars.append({"total": total, "desc": desc, "updates": [], "closed": False})
        return self

    def update(self, n=1):
        self.bars[-1]["updates"].append(n)

    def close(self):
        self.bars[-1]["closed"] = True


class Offline:
    """A session that must not be asked anything."""

    testnet = False

    def get_kline(self, **kw):
        raise AssertionError(f"asked Bybit for {kw}")

    get_funding_rate_history = get_kline


def test_plan_chunks_extends_the_cache_towards_the_range():
    t = pd.Timestamp("2024-01-01", tz="UTC")
    h = pd.Timedelta(hours=1)
    assert plan_chunks(None, None, t, t + 5 * h, 2 * h) == [(t, t + 2 * h), (t + 2 * h, t + 4 * h),
                                                             (t + 4 * h, t + 5 * h)]
    # cached [t+2h, t+3h]: backwards to t, then forwards to t+6h, in 2 h steps
    assert plan_chunks(t + 2 * h, t + 3 * h, t, t + 6 * h, 2 * h) == [
        (t, t + 2 * h), (t + 3 * h, t + 5 * h), (t + 3 * h, t + 6 * h)]
    assert plan_chunks(t, t + 9 * h, t + h, t + 2 * h, h) == []  # all cached: nothing to ask
    with pytest.raises(ValueError, match="span"):
        plan_chunks(None, None, t, t, pd.Timedelta(0))


def test_download_in_chunks_then_resume_asks_only_for_what_is_missing(tmp_path):
    frame = minute_bars(drop=range(100, 110))  # ten minutes missing: one gap
    s, bar = FrameKlines(frame), Recorder()
    res = download_klines(s, "linear", "BTCUSDT", "1", frame.index[0], frame.index[2999],
                          cache_dir=tmp_path, now=NOW, chunk_bars=1000, progress=bar)
    assert res.source == "bybit:BTCUSDT:1" and res.rows == res.new == 3000
    assert (res.first, res.last) == (frame.index[0], frame.index[2999])
    assert (res.gaps, res.missing) == (1, 10)
    assert res.path.name == "bybit_mainnet_linear_BTCUSDT_1.parquet"
    assert len(bar.bars[0]["updates"]) == 4 and bar.bars[0]["closed"]  # 3009 min: 4 chunks
    assert sum(bar.bars[0]["updates"]) == bar.bars[0]["total"] == 3009  # the range in bars
    # the range again: the cache answers, Bybit is not asked
    again = download_klines(Offline(), "linear", "BTCUSDT", "1", frame.index[0],
                            frame.index[2999], cache_dir=tmp_path, now=NOW, chunk_bars=1000)
    assert (again.rows, again.new) == (3000, 0)
    # a longer range: only bars after the last cached one are asked for
    s.calls.clear()
    more = download_klines(s, "linear", "BTCUSDT", "1", frame.index[0], frame.index[-1],
                           cache_dir=tmp_path, now=NOW, chunk_bars=1000)
    assert more.rows == len(frame) and more.new == len(frame) - 3000
    last_ms = int(frame.index[2999].value // 1_000_000)
    assert s.calls and all(c["start"] > last_ms for c in s.calls)
    # what the feeds read is what Bybit served
    with pytest.warns(UserWarning, match="1 gaps, 10 bars missing"):
        got = load_source("bybit:BTCUSDT:1", "2024-01-01", frame.index[-1].strftime(
            "%Y-%m-%d %H:%M"), cache_dir=tmp_path, session=Offline())
    pd.testing.assert_frame_equal(got[frame.columns], frame, check_freq=False)
    # pybit's own client, built by the reader itself: nothing asked (sockets are disabled)
    with pytest.warns(UserWarning, match="1 gaps"):
        again = load_source("bybit:BTCUSDT:1", "2024-01-01", "2024-01-02",
                            cache_dir=tmp_path)
    assert len(again) == 1440 * 2 - 10


class Interrupting(FrameKlines):
    def __init__(self, frame, after):
        super().__init__(frame)
        self.after = after

    def get_kline(self, **kw):
        if len(self.calls) >= self.after:
            raise KeyboardInterrupt
        return super().get_kline(**kw)


def test_an_interrupted_download_keeps_its_chunks_and_resumes(tmp_path):
    frame = minute_bars(n=4000)
    with pytest.raises(KeyboardInterrupt):
        download_klines(Interrupting(frame, after=3), "linear", "BTCUSDT", "1", frame.index[0],
                        frame.index[-1], cache_dir=tmp_path, now=NOW, chunk_bars=1000)
    kept = list_cache(tmp_path)[0]
    assert len(kept) == 1 and kept[0].rows >= 2000  # the finished chunks are on disk
    s = FrameKlines(frame)
    res = download_klines(s, "linear", "BTCUSDT", "1", frame.index[0], frame.index[-1],
                          cache_dir=tmp_path, now=NOW, chunk_bars=1000)
    assert res.rows == 4000 and res.new == 4000 - kept[0].rows
    assert len(s.calls) <= 3  # the rest only, not the whole range again
    got = pd.read_parquet(res.path)
    np.testing.assert_allclose(got["close"].to_numpy(), frame["close"].to_numpy())


class FrameFunding:
    """pybit-like ``get_funding_rate_history`` over a Series of rates (newest first)."""

    testnet = False

    def __init__(self, rates):
        self.rates, self.calls = rates, []

    def get_funding_rate_history(self, category, symbol, startTime, endTime, limit=200):
        self.calls.append(dict(startTime=startTime, endTime=endTime))
        ms = self.rates.index.as_unit("ms").asi8
        rows = [{"symbol": symbol, "fundingRate": repr(float(v)), "fundingRateTimestamp": str(m)}
                for m, v in zip(ms, self.rates.to_numpy()) if startTime <= m <= endTime]
        return {"retCode": 0, "retMsg": "OK", "result": {"category": category,
                                                           "list": rows[::-1][:limit]}}


def test_funding_download_resumes_and_is_listed(tmp_path):
    marks = pd.date_range("2023-01-01", "2024-03-01", freq="8h", tz="UTC", name="datetime")
    rates = pd.Series(np.linspace(-1e-4, 3e-4, len(marks)), index=marks)
    s, bar = FrameFunding(rates), Recorder()
    res = download_funding(s, "linear", "BTCUSDT", "2023-01-01", "2024-03-01",
                           cache_dir=tmp_path, now=NOW, chunk=pd.Timedelta(days=100),
                           progress=bar)
    assert res.source == "bybit:BTCUSDT:funding" and res.rows == len(marks) and res.gaps == 0
    assert len(bar.bars[0]["updates"]) == 5
    again = download_funding(Offline(), "linear", "BTCUSDT", "2023-02-01", "2024-02-01",
                             cache_dir=tmp_path, now=NOW)
    assert again.new == 0
    got = feeds.load_funding_rates("BTCUSDT", "2023-01-01", "2024-03-01", session=Offline(),
                                   cache_dir=tmp_path, now=NOW)
    pd.testing.assert_series_equal(got, rates.rename("funding_rate"), check_freq=False)
    (entry,), aside = list_cache(tmp_path)
    assert entry.source == "bybit:BTCUSDT:funding" and entry.rows == len(marks) and not aside
    assert "covers 2023-01-01 00:00" in entry.note


def yahoo_downloader(frame, calls):
    def download(ticker, start, end, interval, auto_adjust, progress):
        calls.append((ticker, start, end))
        lo, hi = (pd.Timestamp(t).tz_convert("UTC") for t in (start, end))
        part = frame[(frame.index >= lo) & (frame.index < hi)]
        out = part.rename(columns=str.title)
        out.index = out.index.tz_localize(None)
        return out

    return download


def test_yahoo_download_is_what_the_feed_reads(tmp_path):
    days = pd.bdate_range("2023-01-02", "2023-06-30", tz="UTC", name="datetime")
    frame = minute_bars(n=len(days)).set_axis(days)
    calls = []
    (res,) = download(["yahoo:NVDA:1d"], "2023-01-01", "2023-06-30", cache_dir=tmp_path,
                      downloader=yahoo_downloader(frame, calls), now=NOW)
    assert res.source == "yahoo:NVDA:1d" and res.rows == len(days) and res.gaps is None
    assert res.path.name == "yahoo_NVDA_1d_adj.parquet" and len(calls) == 1
    got = load_source("yahoo:NVDA:1d", "2023-01-01", "2023-06-30", cache_dir=tmp_path,
                      downloader=yahoo_downloader(frame, calls))
    np.testing.assert_allclose(got["close"].to_numpy(), frame["close"].to_numpy())


def test_a_series_with_an_embedded_name_is_fetched_and_read_by_its_full_name(tmp_path, capsys,
                                                                           monkeypatch):
    days = pd.bdate_range("2010-01-04", "2010-03-31", tz="UTC", name="datetime")
    frame = minute_bars(n=len(days)).set_axis(days)
    calls = []
    (res,) = download(["yahoo:AAPL:1d"], "2010-01-01", "2010-03-31", cache_dir=tmp_path,
                      downloader=yahoo_downloader(frame, calls), now=NOW)
    assert res.source == "yahoo:AAPL:1d:adjusted" and res.rows == len(days)
    got = load_source("yahoo:AAPL:1d:adjusted", "2010-01-01", "2010-03-31",
                      cache_dir=tmp_path, downloader=yahoo_downloader(frame, calls))
    np.testing.assert_allclose(got["close"].to_numpy(), frame["close"].to_numpy())
    sample = load_source("yahoo:AAPL:1d", cache_dir=tmp_path)  # the name alone: the sample
    assert sample.index[0] == pd.Timestamp("2019-01-02", tz="UTC")
    # on the command line the download says how to read it
    bars = minute_bars(start="2023-03-01", n=300).resample("1h").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    monkeypatch.setattr("s4_strategies.apps.cli_data.make_session",
                        lambda testnet=False: FrameKlines(bars))
    assert main(["data", "download", "bybit:BTCUSDT:60", "--from", "2023-03-01", "--to",
                 "2023-03-01", "--cache-dir", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "bybit:BTCUSDT:60:linear: 5 bars cached" in out
    assert "bybit:BTCUSDT:60 is the embedded sample: read the download as --data " \
           "bybit:BTCUSDT:60:linear" in out
    assert main(["data", "list", "--cache-dir", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert "\nbybit:BTCUSDT:60:linear " in listing and "\nyahoo:AAPL:1d:adjusted " in listing


@responses.activate
def test_the_command_through_the_real_pybit_client(tmp_path, capsys):
    frame = minute_bars(n=2500, drop=range(2000, 2003))
    served = []

    def kline(request):
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(request.url).query))
        served.append(q)
        body = FrameKlines(frame).get_kline(q["category"], q["symbol"], q["interval"],
                                            int(q["start"]), int(q["end"]), int(q["limit"]))
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    responses.add_callback(responses.GET, KLINE_URL, callback=kline)
    argv = ["data", "download", "bybit:BTCUSDT:1", "--from", "2024-01-01", "--to",
            "2024-01-02 17:39", "--cache-dir", str(tmp_path)]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "bybit:BTCUSDT:1: 2,497 bars cached, 2024-01-01 00:00 .. 2024-01-02 17:39 UTC " \
           "(2,497 new), gaps: 1 (3 bars missing)" in out
    assert "bybit:BTCUSDT:1" in err and "bar" in err  # tqdm's progress bar on stderr
    asked = len(served)
    assert main(argv + ["--quiet"]) == 0 and len(served) == asked  # all cached: no request
    assert "(0 new)" in capsys.readouterr().out
    assert main(["data", "list", "--cache-dir", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    row = next(line for line in listing.splitlines() if line.startswith("bybit:BTCUSDT:1 "))
    assert row.split()[1:8] == ["mainnet", "2024-01-01", "00:00", "2024-01-02", "17:39",
                                "2,497", "1"]
    assert "bybit_mainnet_linear_BTCUSDT_1.parquet" in row


@pytest.mark.parametrize("arg, message", [
    ("binance:BTCUSDT:trades", "is tick data: nothing to download"),
    ("yahoo:AAPL:1d:raw", "the fourth part can only be 'adjusted'"),
    ("bybit:BTCUSDT:7", "Bybit interval '7' is not one of"),
    ("bybit:BTCUSDT:funding:spot", "spot has no funding"),
    ("yahoo:AAPL:2h", "yfinance interval '2h'"),
    ("kraken:XBT:1", "unknown data source"),
])
def test_bad_sources_are_one_line_errors(arg, message, tmp_path, capsys):
    rc = main(["data", "download", arg, "--from", "2024-01-01", "--cache-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # nothing written


def test_list_shows_files_moved_aside_and_foreign_ones(tmp_path, capsys):
    frame = minute_bars(n=50)
    download_klines(FrameKlines(frame), "spot", "ETHUSDT", "1", frame.index[0], frame.index[-1],
                    cache_dir=tmp_path, now=NOW)
    (tmp_path / "bybit_mainnet_linear_BTCUSDT_60.parquet.corrupt-20240101T000000").write_text("x")
    frame.to_parquet(tmp_path / "mine.parquet")
    assert main(["data", "list", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "bybit:ETHUSDT:1:spot" in out and "mine.parquet  (not a file of these feeds)" in out
    assert "1 file(s) moved aside" in out and ".corrupt-20240101T000000" in out
    assert main(["data", "list", "--cache-dir", str(tmp_path / "none")]) == 0
    assert "(empty" in capsys.readouterr().out
