"""``s4trade live --testnet`` on an exchange that splits every fill, drops the private stream
and reconnects at once while candles keep coming, and a runner killed right after placing
an order, then restarted: the decisions are the uninterrupted backtest's, the runner's
position is the exchange's on every bar, and the journal holds every order and fill.

The exchange is the fake Bybit account (tests/fake_bybit.py): market orders rest until the
next trade (an order is open when the runner dies) and fill in three executions. Candles
come from a socket that first prints the bar's close as a trade on the exchange (fills
happen), then confirms the candle, and waits for the runner to finish the bar before the
next. "Killed" is an exception raised inside the order request, after the exchange took
the order: nothing after it runs (no stop, no last save, no journal line), as with kill -9;
what the runner wrote before is on disk (the journal is flushed per line, the state written
atomically per bar).
"""

from __future__ import annotations

import re
import threading

import backtrader as bt
import pandas as pd
import pytest

import feeds
from s4_strategies.apps.live import run_live
from s4_strategies.live.gate import trade_from
from s4_strategies.live.journal import read_records
from s4_strategies.strategies import S4DirectionalStrategy
from tests.fake_bybit import FakeBybit, FakeSession
from tests.live_helpers import FrameKlines, kline_message

STRAT = dict(rule="argmax", conf_threshold=0.0, min_change=0.05, max_position=0.5)
K = 200  # the first live bar


class Killed(BaseException):
    pass


class Market:
    """Candles of ``frame`` after the exchange trades at each close; one bar at a time."""

    def __init__(self, ex, frame, drop_at=None):
        self.ex, self.frame, self.drop_at = ex, frame, drop_at
        self.done = threading.Event()
        self.exited = False
        self.positions = {}  # bar open -> the exchange's position after its trade
        self.current = None  # the bar whose close was printed last
        self.stalled = None

    def __call__(self, channel_type, testnet):
        return self.ex.ws_factory(channel_type, testnet) if channel_type == "private" else self

    def kline_stream(self, interval, symbol, callback):
        threading.Thread(target=self._push, args=(interval, symbol, callback),
                         daemon=True).start()

    def _push(self, interval, symbol, callback):
        for ts, row in self.frame.iterrows():
            if self.exited:
                return
            with self.ex._lock:
                if ts == self.drop_at:
                    self.ex.drop()  # the private stream is down for this trade ...
                self.ex.trade(float(row.close))
                self.current = ts
                if ts == self.drop_at:
                    self.ex.reconnect()  # ... and back within the same instant
                self.positions[ts] = self.ex.position[0]
            self.done.clear()
            callback(kline_message(ts, row, interval, symbol))
            waited = 0.0
            while not self.done.wait(0.05):
                waited += 0.05
                if self.exited:
                    return
                if waited > 30:  # the runner never finished the bar: fail, not hang
                    self.stalled = ts
                    return

    def is_connected(self):
        return not self.exited

    def exit(self):
        self.exited = True


class Session(FakeSession):
    """The REST session; records each order with the bar of the last trade it met, and dies
    right after the exchange took the order placed on bar ``kill_at``."""

    def __init__(self, ex, market, kill_at=None):
        super().__init__(ex)
        self.market, self.kill_at, self.placed = market, kill_at, []

    def __getattr__(self, name):
        call = super().__getattr__(name)
        if name != "place_order":
            return call

        def place(**kw):
            bar = self.market.current
            out = call(**kw)
            self.placed.append((bar, kw["side"].lower(), kw["orderLinkId"]))
            if bar == self.kill_at:
                raise Killed
            return out

        return place


def backtest_decisions(frame, model):
    """(bar, side) of every order the strategy places in a backtest from bar ``K`` on."""
    seen = []

    class Recorded(S4DirectionalStrategy):
        def order_target_size(self, *args, **kwargs):
            order = super().order_target_size(*args, **kwargs)
            if order is not None:
                seen.append((pd.Timestamp(self.data.datetime.datetime(0), tz="UTC"),
                             "buy" if order.isbuy() else "sell"))
            return order

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feeds.ArrayData(dataname=frame), name="BTCUSDT")
    cerebro.broker.setcash(10_000.0)
    cerebro.addstrategy(trade_from(Recorded, frame.index[K]), model=model, **STRAT)
    cerebro.run(runonce=False)
    return seen


def positions_printed(lines) -> dict:
    out = {}
    for line in lines:
        m = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d) BTCUSDT close .*\| position (\S+) ", line)
        if m:
            out[pd.Timestamp(m.group(1), tz="UTC")] = float(m.group(2))
    return out


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_split_fills_a_fast_reconnect_and_a_kill_change_no_decision(tiny_checkpoint, tmp_path,
                                                                     monkeypatch):
    from s4_strategies.model import load_model

    monkeypatch.setenv("BYBIT_API_KEY", "k")
    monkeypatch.setenv("BYBIT_API_SECRET", "s")
    df = feeds.load_embedded("bybit:BTCUSDT:60", fromdate="2021-07-01", todate="2021-07-31")
    frame = df[["open", "high", "low", "close", "volume"]].iloc[:262]
    model = load_model(tiny_checkpoint)
    want = backtest_decisions(frame, model)
    bars = [b for b, _ in want]
    assert len(want) >= 6, "the test needs a strategy that trades"
    drop_at = frame.index[frame.index.get_loc(bars[0]) + 1]  # the first order fills in the gap
    kill_at = bars[3]  # killed right after its fourth order reached the exchange
    after = frame.index.get_loc(kill_at) + 1

    ex = FakeBybit(balance=10_000.0, price=float(frame.close.iloc[K - 1]),
                   split=(0.37, 0.29, 1.0), market_on_trade=True)
    ex.klines = FrameKlines(frame)
    lines: list[str] = []

    def live(session, market, now, n):
        def printer(line):
            lines.append(line)
            if " BTCUSDT close " in line:
                market.done.set()

        try:
            return run_live("bybit:BTCUSDT:60", "testnet", model=tiny_checkpoint, out=tmp_path,
                            params=STRAT, session=session, ws_factory=market, now=now,
                            qcheck=0.02, backfill=frame.index.get_loc(now), printer=printer,
                            stop_after=n)
        finally:
            market.exit()

    market1 = Market(ex, frame.iloc[K:], drop_at=drop_at)
    first = Session(ex, market1, kill_at=kill_at)
    with pytest.raises(Killed):
        live(first, market1, frame.index[K], 10_000)
    ex.callbacks.clear()  # the dead runner's socket is gone
    open_at_kill = [o for o in ex.orders.values() if o["orderStatus"] == "New"]
    assert len(open_at_kill) == 1  # the order it had just placed

    market = Market(ex, frame.iloc[after:])
    second = Session(ex, market)
    summary = live(second, market, frame.index[after], len(frame) - after)
    assert summary["bars"] == len(frame) - after

    # the decisions: those of the uninterrupted backtest, bar for bar
    got = [(b, side) for b, side, _ in first.placed + second.placed]
    assert got == want
    # the runner's position is the exchange's on every live bar
    printed = positions_printed(lines)
    truth = {**market1.positions, **market.positions}
    assert len(printed) == len(frame) - K - 1  # every live bar but the one it died on
    for ts, size in printed.items():
        assert size == pytest.approx(truth[ts], abs=1e-9), ts
    assert summary["position"] == pytest.approx(ex.position[0], abs=1e-12)
    # the journal holds every exchange order and every fill, with the exchange's fees
    records = read_records(tmp_path / "BTCUSDT" / "journal.jsonl")
    assert {r["link"] for r in records} == {o["orderLinkId"] for o in ex.orders.values()}
    assert {i for r in records for i in r["exec_ids"]} == {e["execId"] for e in ex.executions}
    fees = {}
    for r in records:
        if r["status"] in ("Partial", "Completed"):
            fees[r["link"]] = r["comm"]
    assert sum(fees.values()) == pytest.approx(sum(float(e["execFee"]) for e in ex.executions))
    assert any(r["adopted"] for r in records)  # the order open at the kill, taken over
