"""YFinanceData / fetch_yfinance with a faked ``yfinance.download`` (offline).

The fake builds its answer with the same pandas steps as yfinance 1.7's ``download``
(``multi._download_impl``): per-ticker frames concatenated with keys (Ticker, Price),
levels swapped to (Price, Ticker) and sorted, so even one ticker gives MultiIndex columns;
daily bars on a naive ``Date`` index, intraday on a tz-aware exchange-time ``Datetime`` index.
"""

import datetime as dt
import os

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

import feeds
from feeds.cache import CacheWarning
from feeds.yahoo import fetch_yfinance, flatten_columns, load_yfinance

NY = "America/New_York"
AAPL = feeds.load_embedded("yahoo:AAPL:1d")
MSFT = feeds.load_embedded("yahoo:MSFT:1d")
NOW_DAILY = pd.Timestamp("2024-01-02 12:00", tz="UTC")
NOW_INTRA = pd.Timestamp("2024-07-10 20:00", tz="UTC")


def yahoo_daily(emb, auto_adjust):
    """One ticker's ``Ticker.history`` frame (Title-case columns, naive dates)."""
    out = pd.DataFrame(index=pd.DatetimeIndex(emb.index.tz_localize(None).date, name="Date"))
    if auto_adjust:
        ratio = (emb["adj_close"] / emb["close"]).to_numpy()
        for k in ("open", "high", "low", "close"):
            out[k.title()] = emb[k].to_numpy() * ratio
    else:
        for k in ("open", "high", "low", "close"):
            out[k.title()] = emb[k].to_numpy()
        out["Adj Close"] = emb["adj_close"].to_numpy()
    out["Volume"] = emb["volume"].to_numpy().astype("int64")
    return out


def yahoo_intraday(days, freq="5min", seed=0):
    """5-minute regular-session bars in exchange time (tz-aware), a seeded random walk."""
    rng = np.random.default_rng(seed)
    idx = pd.DatetimeIndex([], tz=NY)
    for day in days:
        open_ = pd.Timestamp(f"{day} 09:30", tz=NY)
        idx = idx.append(pd.date_range(open_, open_ + pd.Timedelta("6h25min"), freq=freq))
    close = 190 * np.exp(np.cumsum(rng.normal(0, 1e-3, len(idx))))
    open_ = np.r_[close[0], close[:-1]]
    wig = np.abs(rng.normal(0, 5e-4, len(idx))) * close
    return pd.DataFrame(
        {
            "Open": open_,
            "High": np.maximum(open_, close) + wig,
            "Low": np.minimum(open_, close) - wig,
            "Close": close,
            "Volume": rng.integers(1e4, 1e6, len(idx)),
        },
        index=pd.DatetimeIndex(idx, name="Datetime"),
    )


def as_download(per_ticker: dict) -> pd.DataFrame:
    """yfinance 1.7 ``download`` assembly: MultiIndex (Price, Ticker), sorted."""
    data = pd.concat(
        per_ticker.values(), axis=1, sort=True, keys=per_ticker.keys(), names=["Ticker", "Price"]
    )
    data.columns = data.columns.swaplevel(0, 1)
    return data.sort_index(level=0, axis=1)


class FakeDownloader:
    """``yfinance.download``-compatible: filters its recorded frames to [start, end)."""

    def __init__(self, frames, scale=1.0):
        self.frames, self.scale, self.calls = frames, scale, []

    def __call__(
        self,
        tickers,
        start=None,
        end=None,
        interval="1d",
        auto_adjust=True,
        progress=True,
        **kwargs,
    ):
        self.calls.append(
            dict(
                tickers=tickers,
                start=start,
                end=end,
                interval=interval,
                auto_adjust=auto_adjust,
                progress=progress,
                **kwargs,
            )
        )
        per = {}
        for t in tickers.split():
            df = self.frames(t, auto_adjust) if callable(self.frames) else self.frames[t]
            idx = df.index if df.index.tz is not None else df.index.tz_localize(NY)
            keep = (idx >= pd.Timestamp(start)) & (idx < pd.Timestamp(end))
            df = df[keep].copy()
            for c in df.columns:
                if c != "Volume":
                    df[c] = df[c] * self.scale
            per[t] = df
        if all(len(d) == 0 for d in per.values()):  # what yfinance returns offline
            empty = pd.DataFrame(
                columns=["Open", "High", "Low", "Close", "Adj Close", "Volume"],
                index=pd.Index([], name="Date"),
            )
            return as_download({t: empty for t in per})
        return as_download(per)


def daily_fake(**kw):
    embs = {"AAPL": AAPL, "MSFT": MSFT}
    return FakeDownloader(lambda t, adj: yahoo_daily(embs[t], adj), **kw)


def expected_daily(emb, auto_adjust, start, end):
    want = yahoo_daily(emb, auto_adjust)
    want.index = want.index.tz_localize("UTC")
    want = want.loc[start:end]
    want.columns = [c.lower().replace("adj close", "adj_close") for c in want.columns]
    return want.astype("float64")


def same(got, want):
    assert str(got.index.tz) == "UTC" and got.index.is_monotonic_increasing
    got, want = got[want.columns].copy(), want.copy()
    got.index, want.index = got.index.as_unit("ns"), want.index.as_unit("ns")  # units vary
    pd.testing.assert_frame_equal(got, want, check_names=False, check_freq=False)


S, E = pd.Timestamp("2023-03-01", tz="UTC"), pd.Timestamp("2023-06-30", tz="UTC")


# -- shape ----------------------------------------------------------------------------------
def test_fake_is_shaped_like_yfinance_17():
    raw = daily_fake()("AAPL", start=S, end=E, auto_adjust=True)
    assert isinstance(raw.columns, pd.MultiIndex)
    assert raw.columns.names == ["Price", "Ticker"]
    assert list(raw.columns) == [(p, "AAPL") for p in ("Close", "High", "Low", "Open", "Volume")]
    assert raw.index.tz is None and raw.index.name == "Date"


@pytest.mark.parametrize("auto_adjust", [True, False])
def test_daily_multiindex_flattened_lowercased_utc(auto_adjust):
    fake = daily_fake()
    df = fetch_yfinance("AAPL", "1d", S, E, auto_adjust=auto_adjust, downloader=fake, now=NOW_DAILY)
    want = expected_daily(AAPL, auto_adjust, S, E)
    same(df, want)
    assert set(df.columns) == set(want.columns)
    assert ("adj_close" in df.columns) is (not auto_adjust)
    (call,) = fake.calls
    assert call["interval"] == "1d" and call["auto_adjust"] is auto_adjust
    assert call["progress"] is False
    assert pd.Timestamp(call["end"]) == E + pd.Timedelta(days=1)  # yfinance's end is exclusive


def test_intraday_tz_aware_index_converted_to_utc():
    frame = yahoo_intraday(["2024-07-01", "2024-07-02", "2024-07-03"])
    fake = FakeDownloader({"AAPL": frame})
    df = fetch_yfinance("AAPL", "5m", "2024-07-01", "2024-07-04", downloader=fake, now=NOW_INTRA)
    assert df.index[0] == pd.Timestamp("2024-07-01 13:30", tz="UTC")  # 09:30 EDT
    assert len(df) == len(frame)
    np.testing.assert_array_equal(df["close"].to_numpy(), frame["Close"].to_numpy())


def test_selects_the_ticker_and_drops_alignment_padding():
    raw = daily_fake()("AAPL MSFT", start=S, end=E + pd.Timedelta(days=1))
    raw.loc[raw.index[5], ("Close", "MSFT")] = np.nan
    flat = flatten_columns(raw, "msft")
    assert list(flat.columns) == ["close", "high", "low", "open", "volume"]
    # a row that only exists for the other ticker is NaN for this one: dropped, not an error
    pad = raw.copy()
    pad.loc[pd.Timestamp("2023-04-08")] = np.nan  # a Saturday
    pad.loc[pd.Timestamp("2023-04-08"), [(c, "MSFT") for c in ("Close", "High", "Low", "Open")]] = (
        1.0
    )
    pad = pad.sort_index()
    df = fetch_yfinance("AAPL", "1d", S, E, downloader=lambda *a, **k: pad, now=NOW_DAILY)
    same(df, expected_daily(AAPL, True, S, E))


def test_partial_nan_is_an_error():
    raw = daily_fake()("AAPL", start=S, end=E)
    raw.iloc[3, 0] = np.nan
    with pytest.raises(feeds.DataError, match="NaN"):
        fetch_yfinance("AAPL", "1d", S, E, downloader=lambda *a, **k: raw, now=NOW_DAILY)


# -- limits and errors ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "interval,days,limit",
    [("1m", 31, 30), ("5m", 61, 60), ("90m", 61, 60), ("1h", 731, 730), ("60m", 731, 730)],
)
def test_intraday_limits_have_a_clear_message(interval, days, limit):
    fake = daily_fake()
    with pytest.raises(
        ValueError, match=f"Yahoo serves {interval} bars only for the last {limit} days"
    ):
        fetch_yfinance(
            "AAPL", interval, NOW_INTRA - pd.Timedelta(days=days), downloader=fake, now=NOW_INTRA
        )
    assert fake.calls == []


def test_one_minute_requests_are_split_into_seven_day_windows():
    frame = yahoo_intraday(["2024-06-20", "2024-07-01", "2024-07-09"], freq="1min")
    fake = FakeDownloader({"AAPL": frame})
    df = fetch_yfinance(
        "AAPL", "1m", "2024-06-20", "2024-07-09 23:59", downloader=fake, now=NOW_INTRA
    )
    spans = [pd.Timestamp(c["end"]) - pd.Timestamp(c["start"]) for c in fake.calls]
    assert len(fake.calls) == 3 and max(spans) <= pd.Timedelta(days=7)
    assert len(df) == len(frame)


def test_unknown_interval():
    with pytest.raises(ValueError, match="'4h' is not one of 1m, 2m"):
        fetch_yfinance("AAPL", "4h", S, downloader=daily_fake())


def test_empty_result_is_a_clear_error():
    fake = daily_fake()
    with pytest.raises(feeds.DataError, match="yfinance returned no rows.*offline"):
        fetch_yfinance(
            "AAPL",
            "1d",
            "2030-01-01",
            "2030-02-01",
            downloader=fake,
            now=pd.Timestamp("2031-01-01", tz="UTC"),
        )
    empty = fake.__class__(lambda t, a: yahoo_daily(AAPL, a))("AAPL", start=S, end=S)
    assert isinstance(empty.columns, pd.MultiIndex) and len(empty) == 0
    with pytest.raises(feeds.DataError, match="no rows"):
        fetch_yfinance("AAPL", "1d", S, E, downloader=lambda *a, **k: None, now=NOW_DAILY)


def test_open_bar_is_dropped():
    frame = yahoo_intraday(["2024-07-10"])
    fake = FakeDownloader({"AAPL": frame})
    now = pd.Timestamp("2024-07-10 15:02", tz="UTC")  # 11:02 EDT: the 11:00 bar is open
    df = fetch_yfinance("AAPL", "5m", "2024-07-10", downloader=fake, now=now)
    assert df.index[-1] == pd.Timestamp("2024-07-10 14:55", tz="UTC")


# -- cache ----------------------------------------------------------------------------------
def test_cache_asks_only_from_the_cached_edge(tmp_path):
    mid = pd.Timestamp("2023-04-28", tz="UTC")
    load_yfinance("AAPL", "1d", S, mid, downloader=daily_fake(), now=NOW_DAILY, cache_dir=tmp_path)
    assert [p for p in os.listdir(tmp_path) if not p.endswith(".lock")] == [
        "yahoo_AAPL_1d_adj.parquet"]
    fake = daily_fake()
    df = load_yfinance("AAPL", "1d", S, E, downloader=fake, now=NOW_DAILY, cache_dir=tmp_path)
    (call,) = fake.calls
    assert pd.Timestamp(call["start"]) == mid  # the edge bar is re-read to detect re-adjustment
    same(df, expected_daily(AAPL, True, S, E))
    fake = daily_fake()
    load_yfinance("AAPL", "1d", S, E, downloader=fake, now=NOW_DAILY, cache_dir=tmp_path)
    assert fake.calls == []


def test_readjusted_history_invalidates_the_cache(tmp_path):
    load_yfinance(
        "AAPL", "1d", S, "2023-04-28", downloader=daily_fake(), now=NOW_DAILY, cache_dir=tmp_path
    )
    fake = daily_fake(scale=0.99)  # a dividend: Yahoo rescaled all adjusted history
    with pytest.warns(CacheWarning, match="changed bars that are in the cache"):
        df = load_yfinance("AAPL", "1d", S, E, downloader=fake, now=NOW_DAILY, cache_dir=tmp_path)
    assert len(fake.calls) == 2
    want = expected_daily(AAPL, True, S, E)
    np.testing.assert_allclose(df["close"], want["close"] * 0.99, rtol=1e-12)


def test_offline_with_a_cache_warns_and_serves_the_cache(tmp_path):
    load_yfinance("AAPL", "1d", S, E, downloader=daily_fake(), now=NOW_DAILY, cache_dir=tmp_path)
    offline = FakeDownloader(lambda t, a: yahoo_daily(AAPL, a).iloc[:0])
    with pytest.warns(CacheWarning, match="no new bars after"):
        df = load_yfinance(
            "AAPL", "1d", S, "2023-12-29", downloader=offline, now=NOW_DAILY, cache_dir=tmp_path
        )
    assert df.index[-1] == E


# -- in Cerebro -----------------------------------------------------------------------------
class Collect(bt.Strategy):
    def __init__(self):
        self.rows = []

    def next(self):
        d = self.data
        self.rows.append(
            (
                d.datetime.datetime(0),
                d.open[0],
                d.high[0],
                d.low[0],
                d.close[0],
                d.volume[0],
                d.adj_close[0],
            )
        )


def test_yfinance_data_in_cerebro(tmp_path):
    data = feeds.YFinanceData(
        ticker="AAPL",
        interval="1d",
        fromdate=dt.datetime(2023, 3, 1),
        todate=dt.datetime(2023, 6, 30),
        auto_adjust=False,
        downloader=daily_fake(),
        now=NOW_DAILY,
        cache_dir=tmp_path,
    )
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(data)
    cerebro.addstrategy(Collect)
    rows = cerebro.run()[0].rows
    want = expected_daily(AAPL, False, S, E)
    got = pd.DataFrame(rows, columns=["dt", "open", "high", "low", "close", "volume", "adj_close"])
    got = got.set_index(pd.DatetimeIndex(got.pop("dt")).tz_localize("UTC"))
    same(got, want)
    assert data._timeframe == bt.TimeFrame.Days and data._name == "AAPL"
    with pytest.raises(ValueError, match="needs fromdate"):
        feeds.YFinanceData(ticker="AAPL")
    with pytest.raises(ValueError, match="needs ticker"):
        feeds.YFinanceData(fromdate=dt.datetime(2023, 1, 1))
