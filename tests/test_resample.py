"""``cerebro.resampledata`` / ``replaydata`` of our open-stamped feeds give the bins pandas'
``df.resample`` gives of the same frame (4 hours and days, from hourly and one-minute bars),
each handed to the strategy with the base bar that completes it, never earlier."""

from __future__ import annotations

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

import feeds
from feeds.bartime import bar_open, num_to_index

AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
RULES = {"4h": (bt.TimeFrame.Minutes, 240), "1D": (bt.TimeFrame.Days, 1)}


def _minutes(days: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    idx = pd.date_range("2024-03-01", periods=days * 1440, freq="1min", tz="UTC")
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 1e-3, len(idx))))
    open_ = np.concatenate([[100.0], close[:-1]])
    wig = np.abs(rng.normal(0, 5e-4, len(idx))) * close
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + wig,
                         "low": np.minimum(open_, close) - wig, "close": close,
                         "volume": rng.uniform(1, 10, len(idx))}, index=idx)


FRAMES = {"1h": lambda: feeds.load_embedded("bybit:BTCUSDT:60", todate="2021-01-06 23:00"),
          "1min": _minutes}


class Record(bt.Strategy):
    """Every bar of data1 as it stood when its length last changed, with data0's stamp at
    the step it first appeared."""

    def __init__(self):
        self.bars, self.first_seen = {}, {}

    def next(self):
        d = self.data1
        n = len(d)
        self.first_seen.setdefault(n, self.data0.datetime[0])
        self.bars[n] = (d.datetime[0], bar_open(d), d.open[0], d.high[0], d.low[0],
                        d.close[0], d.volume[0])


def _run(df, rule: str, how: str, with_base: bool = True):
    tf, comp = RULES[rule]
    cerebro = bt.Cerebro(stdstats=False)
    data = feeds.ArrayData(dataname=df)
    cerebro.adddata(data if with_base else feeds.ArrayData(dataname=df))
    getattr(cerebro, f"{how}data")(data, timeframe=tf, compression=comp)
    cerebro.addstrategy(Record)
    return cerebro.run()[0]


@pytest.mark.parametrize("how", ["resample", "replay"])
@pytest.mark.parametrize("rule", ["4h", "1D"])
@pytest.mark.parametrize("base", ["1h", "1min"])
def test_bins_are_pandas_bins_on_the_feeds_clock(base, rule, how):
    df = FRAMES[base]()
    spacing = df.index[1] - df.index[0]
    want = df.resample(rule).agg(AGG)
    strat = _run(df, rule, how)
    got = pd.DataFrame([v[2:] for _, v in sorted(strat.bars.items())], columns=list(AGG))
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-12)
    stamps = num_to_index([v[0] for _, v in sorted(strat.bars.items())])
    opens = num_to_index([v[1] for _, v in sorted(strat.bars.items())])
    # stamped with the open of the bin's last base bar; bar_open gives the bin's open
    assert (stamps == want.index + pd.Timedelta(rule) - spacing).all()
    assert (opens == want.index).all()
    # handed out with the base bar that completes it: not one base bar earlier
    seen = num_to_index([strat.first_seen[n] for n in sorted(strat.bars)])
    done = want.index + pd.Timedelta(rule) - spacing
    if how == "resample":
        assert (seen == done).all()
    else:  # a replayed bar grows bar by bar from its bin's first base bar
        assert (seen == want.index).all()


def test_a_resampled_feed_alone_and_a_clone_agree():
    df = FRAMES["1h"]()
    alone = _run(df, "4h", "resample", with_base=False).bars
    clone = _run(df, "4h", "resample").bars
    assert alone == clone


class Signals(bt.Strategy):
    params = dict(model=None)

    def __init__(self):
        from s4_strategies import S4Indicator

        self.s4 = S4Indicator(self.datas[-1], model=self.p.model, strict=False, warmup=10)
        self.out = {}

    def next(self):
        d = self.datas[-1]
        self.out[bar_open(d)] = self.s4.pred_return[0]


def test_the_model_reads_a_resampled_bar_as_the_pandas_bar():
    """The indicator's time features take a resampled bar's bin open: its predictions over
    resampled hourly bars are those over the pandas-resampled frame."""
    from s4_strategies import default_checkpoint, load_model

    model = load_model(default_checkpoint())
    df = FRAMES["1h"]()
    runs = []
    for resampled in (True, False):
        cerebro = bt.Cerebro(stdstats=False)
        if resampled:
            cerebro.resampledata(feeds.ArrayData(dataname=df), timeframe=bt.TimeFrame.Minutes,
                                 compression=240)
        else:
            cerebro.adddata(feeds.ArrayData(dataname=df.resample("4h").agg(AGG)))
        cerebro.addstrategy(Signals, model=model)
        runs.append(cerebro.run(runonce=False)[0].out)
    assert runs[0].keys() == runs[1].keys() and len(runs[0]) > 10
    np.testing.assert_allclose(list(runs[0].values()), list(runs[1].values()), rtol=1e-9)
