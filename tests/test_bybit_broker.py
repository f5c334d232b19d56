"""The Bybit broker against a fake Bybit V5 account (tests/fake_bybit.py), inside Cerebro.

A scripted strategy places orders on given bars; between bars the script moves the fake
market. Every assertion is on what backtrader reports (``notify_order``, ``notify_trade``,
``getposition``) against what the fake exchange holds.
"""

from __future__ import annotations

import logging

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

import feeds
from feeds.bybit_orders import Instrument, RateLimiter, fmt, order_outcome
from tests.fake_bybit import FakeBybit

N = 12


def bars(n=N, start=30_000.0):
    idx = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    close = start + 10.0 * np.arange(n)
    return pd.DataFrame({"open": close, "high": close + 5, "low": close - 5, "close": close,
                         "volume": 1.0}, index=idx)


class Script(bt.Strategy):
    params = dict(plan=None)

    def __init__(self):
        self.events, self.trades, self.orders = [], [], {}

    def notify_order(self, order):
        self.events.append((len(self), order.ref, order.getstatusname(),
                            round(order.executed.size, 6), order.info.get("reject_reason")))

    def notify_trade(self, trade):
        self.trades.append((trade.status, round(trade.size, 6), round(trade.pnlcomm, 6)))

    def next(self):
        step = (self.p.plan or {}).get(len(self))
        if step is not None:
            step(self)


def run(ex, plan, *, data=None, broker_kw=None, store_kw=None):
    store = feeds.BybitStore(api_key="k", api_secret="s", session=ex.session(),
                             ws_factory=ex.ws_factory, symbols=("BTCUSDT",), **(store_kw or {}))
    cerebro = bt.Cerebro(stdstats=False, quicknotify=True)
    cerebro.adddata(data or feeds.ArrayData(dataname=bars()), name="BTCUSDT")
    cerebro.setbroker(store.getbroker(**(broker_kw or {})))
    cerebro.addstrategy(Script, plan=plan)
    strat = cerebro.run(runonce=False)[0]
    return strat, cerebro.broker


def statuses(strat, ref):
    return [e[2] for e in strat.events if e[1] == ref]


# -- pure pieces ------------------------------------------------------------------------------
def test_instrument_rounds_to_lot_and_tick_never_more_aggressive():
    inst = Instrument.from_info(FakeBybit().get_instruments_info()["result"]["list"][0])
    assert fmt(inst.round_qty(0.0129)) == "0.012"
    assert fmt(inst.round_qty(0.3)) == "0.3"  # not 0.299 from float noise
    assert fmt(inst.round_price(30000.07, "Buy")) == "30000"
    assert fmt(inst.round_price(30000.01, "Sell")) == "30000.1"
    assert fmt(inst.round_price(30000.1, "Sell")) == "30000.1"


def test_order_outcomes():
    assert order_outcome({"orderStatus": "New"})[0] == "accepted"
    assert order_outcome({"orderStatus": "PartiallyFilled"})[0] == "open"
    assert order_outcome({"orderStatus": "Cancelled", "rejectReason": "EC_PerCancelRequest"}) \
        == ("cancelled", "EC_PerCancelRequest")
    assert order_outcome({"orderStatus": "Cancelled",
                          "rejectReason": "EC_PostOnlyWillTakeLiquidity"})[0] == "rejected"


def test_rate_limiter_spaces_calls():
    t = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        t[0] += s

    lim = RateLimiter(rate=5, per=1.0, clock=lambda: t[0], sleep=sleep)
    for _ in range(12):
        lim.acquire()
    # 5 at once (the bucket), then one every 0.2 s
    assert len(slept) == 7 and sum(slept) == pytest.approx(1.4)


# -- order life cycles ------------------------------------------------------------------------
def test_market_order_fills_and_position_matches_the_exchange():
    ex = FakeBybit()
    orders = {}
    strat, broker = run(ex, {1: lambda s: orders.setdefault("a", s.buy(size=0.0129))})
    ref = orders["a"].ref
    assert statuses(strat, ref) == ["Submitted", "Accepted", "Completed"]
    place = [kw for name, kw in ex.calls if name == "place_order"][0]
    assert place["qty"] == "0.012" and place["orderType"] == "Market"
    assert place["orderLinkId"].startswith("s4-")
    pos = strat.getposition()
    assert pos.size == pytest.approx(0.012) and pos.size == pytest.approx(ex.position[0])
    assert pos.price == pytest.approx(30_000.0)
    assert broker.getcash() == pytest.approx(ex.balance)


def test_partial_fills_then_cancel_leaves_the_filled_part():
    ex = FakeBybit()
    orders = {}

    def place(s):
        orders["a"] = s.buy(size=0.01, exectype=bt.Order.Limit, price=29_990.0)

    def cancel(s):
        s.cancel(orders["a"])

    plan = {1: place, 3: lambda s: ex.trade(29_990.0, qty=0.004),
            5: lambda s: ex.trade(29_985.0, qty=0.003), 7: cancel}
    strat, broker = run(ex, plan)
    ref = orders["a"].ref
    assert statuses(strat, ref) == ["Submitted", "Accepted", "Partial", "Partial", "Canceled"]
    sizes = [e[3] for e in strat.events if e[1] == ref and e[2] == "Partial"]
    assert sizes == [0.004, 0.007]
    assert strat.getposition().size == pytest.approx(0.007) == ex.position[0]
    rec = ex._find(orderLinkId=orders["a"].info["orderLinkId"])
    assert rec["orderStatus"] == "PartiallyFilledCanceled"


def test_insufficient_balance_is_rejected_with_bybits_reason(caplog):
    ex = FakeBybit(balance=100.0)
    orders = {}
    with caplog.at_level(logging.ERROR):
        strat, _ = run(ex, {1: lambda s: orders.setdefault("a", s.buy(size=1.0))})
    assert statuses(strat, orders["a"].ref) == ["Submitted", "Rejected"]
    assert "110007" in caplog.text and "not enough" in caplog.text
    assert strat.getposition().size == 0 and ex.position[0] == 0


def test_post_only_that_would_cross_is_rejected():
    ex = FakeBybit()
    orders = {}
    strat, _ = run(ex, {1: lambda s: orders.setdefault("a", s.buy(
        size=0.01, exectype=bt.Order.Limit, price=30_100.0, postonly=True))})
    place = [kw for name, kw in ex.calls if name == "place_order"][0]
    assert place["timeInForce"] == "PostOnly"
    assert statuses(strat, orders["a"].ref) == ["Submitted", "Accepted", "Rejected"]
    assert strat.events[-1][4] == "EC_PostOnlyWillTakeLiquidity"


def test_below_minimum_size_is_rejected_without_a_request():
    ex = FakeBybit()
    orders = {}
    strat, _ = run(ex, {1: lambda s: orders.setdefault("a", s.buy(size=0.0004))})
    assert statuses(strat, orders["a"].ref) == ["Submitted", "Rejected"]
    assert not [c for c in ex.calls if c[0] == "place_order"]


def test_stop_order_triggers_and_oco_cancels_the_other_leg():
    ex = FakeBybit()
    orders = {}

    def enter(s):
        s.buy(size=0.01)

    def exits(s):
        orders["stop"] = s.sell(size=0.01, exectype=bt.Order.Stop, price=29_900.0,
                                reduceonly=True)
        orders["take"] = s.sell(size=0.01, exectype=bt.Order.Limit, price=30_500.0,
                                oco=orders["stop"], reduceonly=True)

    plan = {1: enter, 2: exits, 4: lambda s: ex.trade(29_890.0)}
    strat, _ = run(ex, plan)
    stop = [kw for name, kw in ex.calls if name == "place_order"][1]
    assert stop["triggerPrice"] == "29900" and stop["triggerDirection"] == 2
    assert stop["reduceOnly"] is True
    assert statuses(strat, orders["stop"].ref)[-1] == "Completed"
    assert statuses(strat, orders["take"].ref)[-1] == "Canceled"
    assert strat.getposition().size == 0 == ex.position[0]
    closed = [t for t in strat.trades if t[0] == bt.Trade.Closed]
    assert len(closed) == 1 and closed[0][2] < 0  # a loss, fees included


def test_amend_moves_a_resting_order_on_the_exchange():
    ex = FakeBybit()
    orders = {}

    def place(s):
        orders["a"] = s.buy(size=0.01, exectype=bt.Order.Limit, price=29_900.0)

    def amend(s):
        assert s.broker.amend(orders["a"], size=0.02, price=29_950.04)

    def fill_unseen(s):  # the fill's pushes are lost: the broker still thinks it rests
        ex.connected = False
        ex.trade(29_950.0)

    def too_late(s):  # Bybit refuses the amend; the order is re-read: it filled
        assert orders["a"].alive()
        assert not s.broker.amend(orders["a"], price=29_000.0)
        assert orders["a"].status == orders["a"].Completed
        ex.connected = True

    strat, _ = run(ex, {1: place, 2: amend, 4: fill_unseen, 5: too_late})
    call = [kw for name, kw in ex.calls if name == "amend_order"][0]
    assert call["price"] == "29950" and call["qty"] == "0.02"
    assert statuses(strat, orders["a"].ref)[-1] == "Completed"
    assert strat.getposition().size == pytest.approx(0.02) == ex.position[0]
    assert strat.getposition().price == pytest.approx(29_950.0)


def test_order_with_an_expiry_is_refused_clearly(caplog):
    ex = FakeBybit()
    orders = {}
    with caplog.at_level(logging.ERROR):
        strat, _ = run(ex, {1: lambda s: orders.setdefault("a", s.buy(
            size=0.01, exectype=bt.Order.Limit, price=29_900.0, valid=bt.Order.DAY))})
    assert statuses(strat, orders["a"].ref) == ["Submitted", "Rejected"]
    assert "valid=" in caplog.text


def test_position_update_ahead_of_its_execution_counts_once(caplog):
    ex = FakeBybit()
    ex.position_first = True
    orders = {}

    def place(s):
        orders["a"] = s.buy(size=0.01, exectype=bt.Order.Limit, price=29_990.0)

    with caplog.at_level(logging.WARNING):
        strat, _ = run(ex, {1: place, 3: lambda s: ex.trade(29_990.0, qty=0.004),
                            5: lambda s: ex.trade(29_990.0)})
    assert statuses(strat, orders["a"].ref) == ["Submitted", "Accepted", "Partial", "Completed"]
    assert strat.getposition().size == pytest.approx(0.01) == ex.position[0]
    assert "taking the exchange's" not in caplog.text


def test_a_trade_made_outside_the_broker_is_taken_from_the_exchange(caplog):
    ex = FakeBybit()
    seen = {}

    def outside(s):  # someone trades by hand on the same account
        ex.place_order(symbol="BTCUSDT", side="Sell", orderType="Market", qty="0.005")

    with caplog.at_level(logging.WARNING):
        strat, _ = run(ex, {2: outside, 4: lambda s: seen.setdefault("pos", s.getposition().size)})
    assert seen["pos"] == pytest.approx(-0.005) == ex.position[0]
    assert "taking the exchange's" in caplog.text


# -- no duplicates, reconnects, restarts ------------------------------------------------------
def test_lost_reply_is_looked_up_not_sent_twice():
    ex = FakeBybit()
    ex.lose_reply.add("place_order")  # the order reaches Bybit, its reply does not come back
    orders = {}
    strat, _ = run(ex, {1: lambda s: orders.setdefault("a", s.buy(size=0.01))})
    assert [c[0] for c in ex.calls].count("place_order") == 1
    assert len(ex.orders) == 1
    assert statuses(strat, orders["a"].ref)[-1] == "Completed"
    assert strat.getposition().size == pytest.approx(0.01) == ex.position[0]


def test_fills_during_a_disconnect_are_recovered_once_after_reconnect():
    ex = FakeBybit()
    orders = {}

    def place(s):
        orders["a"] = s.buy(size=0.01, exectype=bt.Order.Limit, price=29_990.0)

    def drop(s):
        ex.connected = False
        ex.trade(29_990.0, qty=0.006)  # the pushes are lost

    def back(s):
        ex.connected = True

    plan = {1: place, 3: drop, 4: lambda s: None, 5: back,
            7: lambda s: ex.trade(29_980.0, qty=0.01)}
    strat, _ = run(ex, plan)
    ref = orders["a"].ref
    assert statuses(strat, ref) == ["Submitted", "Accepted", "Partial", "Completed"]
    assert strat.getposition().size == pytest.approx(0.01) == ex.position[0]
    # the first fill arrived through the REST re-sync; applying the stream later adds nothing
    assert any(c[0] == "get_executions" and c[1].get("orderId") for c in ex.calls)


def test_restart_with_an_open_position_starts_from_it():
    ex = FakeBybit()
    ex.place_order(symbol="BTCUSDT", side="Buy", orderType="Market", qty="0.02")
    stale = ex.place_order(symbol="BTCUSDT", side="Sell", orderType="Limit", qty="0.02",
                           price="31000", orderLinkId="s4-old-1")["result"]
    foreign = ex.place_order(symbol="BTCUSDT", side="Sell", orderType="Limit", qty="0.01",
                             price="32000", orderLinkId="manual-1")["result"]
    seen = {}
    strat, broker = run(ex, {1: lambda s: seen.setdefault("pos", s.getposition().size)})
    assert seen["pos"] == pytest.approx(0.02)
    assert ex.orders[stale["orderId"]]["orderStatus"] == "Cancelled"
    assert ex.orders[foreign["orderId"]]["orderStatus"] == "New"
    assert broker.getcash() == pytest.approx(ex.balance)


def test_credentials_are_never_logged_or_shown(caplog, monkeypatch):
    monkeypatch.setenv("BYBIT_API_KEY", "KEY-abc123")
    monkeypatch.setenv("BYBIT_API_SECRET", "SECRET-xyz789")
    ex = FakeBybit(balance=100.0)
    store = feeds.BybitStore(session=ex.session(), ws_factory=ex.ws_factory)
    assert store.has_credentials and "SECRET" not in repr(store) and "KEY-" not in repr(store)
    with caplog.at_level(logging.DEBUG):
        run(ex, {1: lambda s: s.buy(size=1.0)})
    assert "SECRET-xyz789" not in caplog.text and "KEY-abc123" not in caplog.text


def test_demo_with_testnet_is_refused():
    with pytest.raises(ValueError, match="demo"):
        feeds.BybitStore(testnet=True, demo=True)
