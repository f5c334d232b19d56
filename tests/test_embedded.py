import datetime as dt

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

import feeds


def test_names_are_the_documented_ones():
    bars = feeds.list_embedded("bars")
    assert bars == [
        "bybit:BTCUSDT:60",
        "bybit:ETHUSDT:60",
        "bybit:SOLUSDT:60",
        "yahoo:AAPL:1d",
        "yahoo:MSFT:1d",
        "yahoo:SPY:1d",
    ]
    assert set(feeds.list_embedded("ticks")) <= set(feeds.list_embedded())
    with pytest.raises(feeds.DataError, match="unknown embedded dataset"):
        feeds.load_embedded("bybit:DOGEUSDT:60")


@pytest.mark.parametrize("name", feeds.list_embedded("bars"))
def test_bars_are_clean_utc_ohlcv(name):
    df = feeds.load_embedded(name)
    assert isinstance(df.index, pd.DatetimeIndex)
    assert str(df.index.tz) == "UTC"
    assert df.index.is_monotonic_increasing and df.index.is_unique
    for col in ("open", "high", "low", "close", "volume"):
        assert df[col].dtype == np.float64
    assert (df["high"] >= df[["open", "close"]].max(axis=1)).all()
    assert (df["low"] <= df[["open", "close"]].min(axis=1)).all()


def test_known_facts_of_the_market():
    btc = feeds.load_embedded("bybit:BTCUSDT:60")
    assert len(btc) == 35_064
    assert btc.loc["2021-01-01 00:00+00:00", "close"] == 28_990.0
    assert btc.loc["2024-12-31 23:00+00:00", "close"] == 93_530.0
    assert feeds.load_embedded("bybit:SOLUSDT:60").index[0] == pd.Timestamp("2021-10-15", tz="UTC")
    assert len(feeds.load_embedded("yahoo:SPY:1d")) == 1_258
    part = feeds.load_embedded("bybit:BTCUSDT:60", fromdate="2023-01-01", todate="2023-01-01 23:00")
    assert len(part) == 24


@pytest.mark.slow
@pytest.mark.parametrize("name", feeds.list_embedded())
def test_every_embedded_dataset_runs_through_cerebro(name):
    df = feeds.load_embedded(name)

    class Count(bt.Strategy):
        def __init__(self):
            self.bars = 0
            self.closes = []

        def next(self):
            self.bars += 1
            if self.bars <= 3:
                self.closes.append(self.data.close[0])

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feeds.EmbeddedData(name=name))
    cerebro.addstrategy(Count)
    strat = cerebro.run()[0]
    # Ticks can share a timestamp; backtrader still delivers each row as a bar.
    assert strat.bars == len(df)
    first = df["close"] if "close" in df else df["price"] if "price" in df else df["mid"]
    np.testing.assert_allclose(strat.closes, first.to_numpy()[:3])


def test_embedded_feed_respects_dates_and_utc():
    data = feeds.EmbeddedData(
        name="bybit:BTCUSDT:60",
        fromdate=dt.datetime(2024, 1, 15),
        todate=dt.datetime(2024, 1, 15, 5),
    )
    seen = []

    class Rec(bt.Strategy):
        def next(self):
            seen.append((self.data.datetime.datetime(0), self.data.close[0], self.data.turnover[0]))

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(data)
    cerebro.addstrategy(Rec)
    cerebro.run()
    assert [s[0] for s in seen] == [dt.datetime(2024, 1, 15, h) for h in range(6)]
    assert seen[0][1] == 42_280.0
    assert seen[0][2] > 0


def test_array_feed_matches_pandasdata():
    df = feeds.load_embedded("yahoo:AAPL:1d").iloc[:200]

    def run(data):
        out = []

        class Rec(bt.Strategy):
            def next(self):
                d = self.data
                out.append((d.datetime[0], d.open[0], d.high[0], d.low[0], d.close[0], d.volume[0]))

        c = bt.Cerebro(stdstats=False)
        c.adddata(data)
        c.addstrategy(Rec)
        c.run()
        return np.array(out)

    ours = run(feeds.ArrayData(dataname=df))
    theirs = run(bt.feeds.PandasData(dataname=df.tz_localize(None), openinterest=None))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)


# -- backtrader sees the true bar spacing ---------------------------------------------------
def _hourly(**kw):
    return feeds.EmbeddedData(name="bybit:BTCUSDT:60", fromdate=dt.datetime(2024, 1, 1),
                              todate=dt.datetime(2024, 1, 3, 23), **kw)


def test_embedded_timeframe_is_set_through_the_params():
    data = _hourly()
    assert (data._timeframe, data._compression) == (bt.TimeFrame.Minutes, 60)
    assert (data.p.timeframe, data.p.compression) == (bt.TimeFrame.Minutes, 60)
    spy = feeds.EmbeddedData(name="yahoo:SPY:1d")
    assert (spy._timeframe, spy._compression) == (bt.TimeFrame.Days, 1)
    ticks = feeds.EmbeddedData(name="binance:BTCUSDT:trades")
    assert ticks._timeframe == bt.TimeFrame.Ticks
    chosen = _hourly(timeframe=bt.TimeFrame.Minutes, compression=30)  # the caller's choice
    assert (chosen._timeframe, chosen._compression) == (bt.TimeFrame.Minutes, 30)
    with pytest.raises(ValueError, match="needs name="):
        feeds.EmbeddedData()
    with pytest.raises(feeds.DataError, match="unknown embedded dataset"):
        feeds.EmbeddedData(name="bybit:DOGEUSDT:60")


def _resampled(timeframe, compression):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.resampledata(_hourly(), timeframe=timeframe, compression=compression)
    rows = []

    class Rec(bt.Strategy):
        def next(self):
            d = self.data
            rows.append((d.open[0], d.high[0], d.low[0], d.close[0], d.volume[0]))

    cerebro.addstrategy(Rec)
    cerebro.run()
    return np.array(rows)


def test_hourly_bars_resample_to_days_and_4h():
    df = feeds.load_embedded("bybit:BTCUSDT:60", "2024-01-01", "2024-01-03 23:00")
    agg = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    daily = _resampled(bt.TimeFrame.Days, 1)
    # seen as daily, each hourly bar used to pass through as a "day" of its own (72 of them)
    np.testing.assert_allclose(daily, df.resample("1D").agg(agg).to_numpy(), rtol=1e-12)
    four = _resampled(bt.TimeFrame.Minutes, 240)
    # bins of bar opens, as pandas makes them (feeds.resample), not shifted by one bar
    np.testing.assert_allclose(four, df.resample("4h").agg(agg).to_numpy(), rtol=1e-12)


def test_analyzers_annualise_embedded_hourly_bars_as_hours():
    import analyzers

    cerebro = bt.Cerebro(stdstats=False)
    data = _hourly()
    cerebro.adddata(data)
    cerebro.addstrategy(bt.Strategy)
    cerebro.addanalyzer(bt.analyzers.TimeReturn, _name="tr")  # groups by the feed's timeframe
    strat = cerebro.run()[0]
    assert len(strat.analyzers.tr.get_analysis()) == 72  # one return per hour, not per day
    ppy = analyzers.infer_periods_per_year(data._timeframe, "crypto", data._compression)
    assert ppy == 24 * 365
