"""One strategy, unchanged, in a backtest, in shadow mode and against the fake exchange.

The same real hourly bars reach ``S4DirectionalStrategy`` three ways: an ``ArrayData``
backtest with backtrader's broker; a live ``BybitData`` (history, then candles pushed on the
kline socket) with the ``ShadowBroker``; the same live feed with the ``BybitBroker`` on the
fake Bybit account. The decisions (bar, side) must be the same bars in all three; shadow and
backtest must agree fill for fill; the backtrader position must equal the exchange's.
"""

from __future__ import annotations

import threading

import backtrader as bt
import pandas as pd
import pytest

import feeds
from s4_strategies.live.replay import compare_fills, journal_fills, load_journal, replay
from s4_strategies.live.shadow import ShadowBroker
from s4_strategies.strategies import S4DirectionalStrategy
from tests.fake_bybit import FakeBybit
from tests.live_helpers import FrameKlines, FrameKlineSocket

STRAT = dict(rule="argmax", conf_threshold=0.0, min_change=0.05, max_position=0.5)


class Decisions(bt.Analyzer):
    """Orders as the strategy placed them and fills as the broker reported them."""

    def start(self):
        self.placed, self.filled = [], []

    def notify_order(self, order):
        bar = pd.Timestamp(order.data.datetime.datetime(0), tz="UTC")
        if order.status == order.Submitted:
            self.placed.append((bar, "buy" if order.isbuy() else "sell", order.created.size))
        elif order.status == order.Completed:
            self.filled.append((bar, order.executed.size, order.executed.price))

    def get_analysis(self):
        return {"placed": self.placed, "filled": self.filled}


@pytest.fixture(scope="module")
def frame():
    df = feeds.load_embedded("bybit:BTCUSDT:60", fromdate="2021-07-01", todate="2021-07-31")
    return df[["open", "high", "low", "close", "volume"]].iloc[:260]


def run(data, broker, model, stop_after=None, quick=True):
    cerebro = bt.Cerebro(stdstats=False, quicknotify=quick)
    cerebro.adddata(data, name="BTCUSDT")
    cerebro.setbroker(broker)
    cerebro.addstrategy(S4DirectionalStrategy, model=model, **STRAT)
    cerebro.addanalyzer(Decisions, _name="decisions")
    if stop_after is not None:  # a live feed never ends: stop on its last bar
        class Stop(bt.Analyzer):
            def next(self):
                if self.strategy.data.datetime.datetime(0) >= stop_after:
                    self.strategy.env.runstop()

        cerebro.addanalyzer(Stop)
    watchdog = threading.Timer(120, cerebro.runstop)
    watchdog.start()
    try:
        return cerebro.run(runonce=False)[0]
    finally:
        watchdog.cancel()


def live_data(frame, k, private=None):
    """History up to bar ``k`` over REST, bars ``k..`` on the socket."""
    return feeds.BybitData(symbol="BTCUSDT", interval="60", live=True,
                           fromdate=frame.index[0].to_pydatetime(), now=frame.index[k],
                           session=FrameKlines(frame), qcheck=0.02,
                           ws_factory=FrameKlineSocket(frame.iloc[k:], private=private))


@pytest.mark.slow
def test_backtest_shadow_and_fake_exchange_decide_the_same(frame, tiny_checkpoint, tmp_path):
    from s4_strategies.model import load_model

    model = load_model(tiny_checkpoint)
    last = frame.index[-1].tz_localize(None).to_pydatetime()
    k = 200

    back = bt.brokers.BackBroker()
    back.setcash(10_000.0)
    bt_run = run(feeds.ArrayData(dataname=frame), back, model).analyzers.decisions.get_analysis()
    assert len(bt_run["placed"]) >= 3, "the test needs a strategy that trades"

    shadow = ShadowBroker(journal=tmp_path / "journal.jsonl")
    shadow.setcash(10_000.0)
    sh = run(live_data(frame, k), shadow, model, stop_after=last)
    sh_run = sh.analyzers.decisions.get_analysis()
    assert sh_run["placed"] == bt_run["placed"]  # same bars, same sides, same sizes
    assert sh_run["filled"] == bt_run["filled"][: len(sh_run["filled"])]
    records = load_journal(tmp_path / "journal.jsonl")
    assert records and all("predictions" in r for r in records)
    assert any(r["predictions"].get("confidence") is not None for r in records)
    report = compare_fills(journal_fills(records), pd.DataFrame(
        [{"bar": b, "symbol": "BTCUSDT", "ref": i, "side": "buy" if s > 0 else "sell",
          "size": s, "price": p, "comm": 0.0} for i, (b, s, p) in enumerate(bt_run["filled"])]))
    assert report["differ"] == 0 and report["matched"] == len(journal_fills(records))
    # the journal replayed through the backtest broker gives the shadow run's fills back
    rep = replay(records, frame, name="BTCUSDT", analyzers={"decisions": Decisions})
    assert rep.analyzers.decisions.get_analysis()["filled"] == sh_run["filled"]

    ex = FakeBybit(balance=10_000.0, price=float(frame.close.iloc[k - 1]))
    store = feeds.BybitStore(api_key="k", api_secret="s", session=ex.session(),
                             ws_factory=ex.ws_factory)
    data = store.getdata("BTCUSDT", interval="60", fromdate=frame.index[0].to_pydatetime(),
                         now=frame.index[k], session=FrameKlines(frame), qcheck=0.02,
                         ws_factory=FrameKlineSocket(frame.iloc[k:], private=ex.ws_factory))
    data.addfilter(lambda d: setattr(ex, "price", float(d.close[0])) or False)
    live = run(data, store.getbroker(), model, stop_after=last)
    ex_run = live.analyzers.decisions.get_analysis()
    assert [p[:2] for p in ex_run["placed"]] == [p[:2] for p in bt_run["placed"]]
    assert live.getposition().size == pytest.approx(ex.position[0], abs=1e-9)
    assert ex.position[0] != 0 or len(ex_run["placed"]) > 0
