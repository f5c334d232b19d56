"""``--data`` sources: embedded names, CSV/parquet files, bybit:/yahoo: through the cache."""

import numpy as np
import pandas as pd
import pytest

import feeds
from s4_strategies.apps.sources import (
    Source,
    SourceError,
    load_source,
    parse_source,
    timeframe_of,
)

BTC = feeds.load_embedded("bybit:BTCUSDT:60", "2021-03-01", "2021-03-10 23:00")


class FakeBybit:
    """Bybit's get_kline over the embedded BTCUSDT bars: [start, end], newest first."""

    def __init__(self):
        df = BTC
        self.rows = [[str(int(t.value // 1_000_000)), *(str(v) for v in row)]
                     for t, row in zip(df.index, df[["open", "high", "low", "close", "volume",
                                                     "turnover"]].to_numpy())][::-1]
        self.calls = 0

    def get_kline(self, **kw):
        self.calls += 1
        rows = [r for r in self.rows if kw["start"] <= int(r[0]) <= kw["end"]][: kw["limit"]]
        return {"retCode": 0, "retMsg": "OK", "result": {"list": rows}}


class Down:
    testnet = False

    def get_kline(self, **kw):
        import requests

        raise requests.ConnectionError("Failed to resolve 'api.bybit.com'")


# -- parsing ----------------------------------------------------------------------------
def test_an_embedded_name_wins_over_the_bybit_form():
    assert parse_source("bybit:BTCUSDT:60").kind == "embedded"
    assert parse_source("yahoo:AAPL:1d").kind == "embedded"


@pytest.mark.parametrize("spec, kind, symbol, interval, category", [
    ("bybit:XRPUSDT:15", "bybit", "XRPUSDT", "15", "linear"),
    ("bybit:ethusdt:D:spot", "bybit", "ETHUSDT", "D", "spot"),
    ("yahoo:NVDA:1h", "yahoo", "NVDA", "1h", None),
])
def test_remote_forms(spec, kind, symbol, interval, category):
    src = parse_source(spec)
    assert (src.kind, src.symbol, src.interval, src.category) == (kind, symbol, interval,
                                                                  category)
    assert src.remote


@pytest.mark.parametrize("spec, match", [
    ("nope", "unknown data source 'nope'; use an embedded name"),
    ("bybit:BTCUSDT", "unknown data source"),
    ("bybit:BTCUSDT:7", "bybit:BTCUSDT:7: "),
    ("bybit:BTCUSDT:60:futures", "futures"),
    ("yahoo:AAPL:2d", "yahoo:AAPL:2d: "),
    ("missing.csv", "no such file"),
    ("", "empty data source"),
])
def test_bad_sources_say_what_is_accepted(spec, match):
    with pytest.raises(SourceError, match=match) as err:
        parse_source(spec)
    assert "\n" not in str(err.value)


# -- files ------------------------------------------------------------------------------
def test_csv_and_parquet_files_load_clean(tmp_path):
    csv = tmp_path / "my bars.csv"
    BTC.rename_axis("timestamp").reset_index().to_csv(csv, index=False)
    pq = tmp_path / "bars.parquet"
    BTC.to_parquet(pq)
    for path in (csv, pq):
        src = parse_source(str(path))
        assert src.kind == "file" and src.symbol == path.stem
        df = load_source(str(path))
        pd.testing.assert_frame_equal(df[BTC.columns], BTC, check_freq=False,
                                      check_names=False)


def test_a_bare_end_date_includes_its_whole_day(tmp_path):
    csv = tmp_path / "bars.csv"
    BTC.to_csv(csv)
    df = load_source(str(csv), "2021-03-02", "2021-03-03")
    assert df.index[0] == pd.Timestamp("2021-03-02", tz="UTC")
    assert df.index[-1] == pd.Timestamp("2021-03-03 23:00", tz="UTC")
    assert len(df) == 48


def test_a_broken_file_is_a_data_error(tmp_path):
    bad = BTC.copy()
    bad.iloc[5, bad.columns.get_loc("high")] = bad["low"].iloc[5] * 0.5
    csv = tmp_path / "bad.csv"
    bad.to_csv(csv)
    with pytest.raises(feeds.DataError):
        load_source(str(csv))
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")
    with pytest.raises(feeds.DataError, match="cannot read"):
        load_source(str(junk))


def test_an_empty_range_is_refused_not_returned():
    with pytest.raises(feeds.DataError, match="no bars"):
        load_source("bybit:BTCUSDT:60", "2030-01-01")


def test_tick_data_is_refused_where_bars_are_needed():
    with pytest.raises(SourceError, match="tick data"):
        load_source("binance:BTCUSDT:trades")


# -- fetched sources --------------------------------------------------------------------
def test_bybit_form_fetches_through_the_cache(tmp_path):
    server = FakeBybit()
    spec = "bybit:XRPUSDT:60"
    df = load_source(spec, "2021-03-02", "2021-03-05", cache_dir=tmp_path, session=server)
    expect = BTC.loc["2021-03-02":"2021-03-05 23:00"]
    np.testing.assert_allclose(df["close"], expect["close"])
    assert server.calls and list(tmp_path.glob("*XRPUSDT*.parquet"))
    # the same range again comes from the cache: a dead connection does not matter
    again = load_source(spec, "2021-03-02", "2021-03-05", cache_dir=tmp_path, session=Down())
    pd.testing.assert_frame_equal(again, df)


def test_offline_fetches_fail_fast_with_one_line():
    with pytest.raises(feeds.FeedError) as err:
        load_source("bybit:XRPUSDT:60", "2024-01-01", "2024-01-02", cache_dir=None,
                    session=Down())
    assert "\n" not in str(err.value)
    # the real clients, with sockets disabled as offline
    for spec in ("bybit:XRPUSDT:60", "yahoo:NVDA:1d"):
        with pytest.raises((feeds.FeedError, feeds.DataError)) as err:
            load_source(spec, "2024-01-01", "2024-01-05", cache_dir=None)
        assert "\n" not in str(err.value)


def test_fetching_needs_a_start():
    with pytest.raises(SourceError, match="needs a start date"):
        load_source("yahoo:NVDA:1d", None, "2024-01-05", downloader=lambda *a, **k: None)


def test_timeframes_from_bar_spacing():
    import backtrader as bt

    assert timeframe_of(BTC.index) == (bt.TimeFrame.Minutes, 60)
    days = feeds.load_embedded("yahoo:AAPL:1d").index
    assert timeframe_of(days) == (bt.TimeFrame.Days, 1)
    assert isinstance(parse_source("bybit:BTCUSDT:60"), Source)
