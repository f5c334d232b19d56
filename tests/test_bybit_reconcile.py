"""The Bybit broker keeps following the exchange through split fills, fast reconnects and
restarts (against the fake Bybit account, tests/fake_bybit.py).

Every assertion is on what backtrader reports (``notify_order``, ``getposition``) and what
the journal holds, against what the fake exchange holds.
"""

from __future__ import annotations

import backtrader as bt
import pytest

import feeds
from s4_strategies.live.journal import OrderJournal, read_records
from tests.fake_bybit import FakeBybit
from tests.test_bybit_broker import Script, bars, statuses


class Killed(BaseException):
    """The process dies here: nothing after it runs (no stop(), no last save)."""


def run(ex, plan, *, broker_kw=None, resume=None, journal=None, n=12):
    """``Script`` on the fake account; ``resume``: a broker state handed back at start (as
    ``StateSaver`` does); ``journal``: an ``OrderJournal`` file."""
    store = feeds.BybitStore(api_key="k", api_secret="s", session=ex.session(),
                             ws_factory=ex.ws_factory, symbols=("BTCUSDT",))
    cerebro = bt.Cerebro(stdstats=False, quicknotify=True)
    cerebro.adddata(feeds.ArrayData(dataname=bars(n)), name="BTCUSDT")
    broker = cerebro.setbroker(store.getbroker(**(broker_kw or {})))
    if resume is not None:
        broker.set_state(resume)
    cerebro.addstrategy(Script, plan=plan)
    if journal is not None:
        cerebro.addanalyzer(OrderJournal, _name="journal", path=journal)
    strat = cerebro.run(runonce=False)[0]
    return strat, broker


def fills(strat, ref):
    return [e[3] for e in strat.events if e[1] == ref and e[2] in ("Partial", "Completed")]


# -- split fills -------------------------------------------------------------------------
@pytest.mark.parametrize("split, qty", [((0.068 / 0.172, 1.0), 0.172),  # 0.068 + 0.104
                                        ((1 / 3, 1 / 3, 1.0), 0.3)])  # 0.1 + 0.1 + 0.1
def test_a_market_order_filled_in_parts_completes_and_the_position_is_exact(split, qty):
    ex = FakeBybit(split=split)
    orders, seen = {}, {}

    def after_sell(s):
        seen["flat"] = s.getposition().size
        orders["c"] = s.buy(size=0.01)  # nothing is stuck: the next order goes through

    plan = {1: lambda s: orders.setdefault("a", s.buy(size=qty)),
            3: lambda s: orders.setdefault("b", s.sell(size=qty)), 5: after_sell}
    strat, broker = run(ex, plan)
    n = len(split)
    assert statuses(strat, orders["a"].ref) == ["Submitted", "Accepted"] + ["Partial"] * (
        n - 1) + ["Completed"]
    assert fills(strat, orders["a"].ref)[-1] == qty
    assert statuses(strat, orders["b"].ref)[-1] == "Completed"
    assert seen["flat"] == 0.0 and repr(seen["flat"]) == "0.0"  # no -1.4e-17 left behind
    assert statuses(strat, orders["c"].ref)[-1] == "Completed"
    assert strat.getposition().size == 0.01 == ex.position[0]
    assert broker.get_orders_open() == []
    assert not [c for c in ex.calls if c[0] == "cancel_order"]


def test_partial_fills_re_read_after_a_gap_are_applied_oldest_first():
    ex = FakeBybit(split=(0.4, 1.0))
    orders = {}

    def gap(s):
        ex.drop()
        ex.trade(29_990.0)  # fills 0.004 then 0.006; the pushes are lost
        ex.reconnect()

    plan = {1: lambda s: orders.setdefault("a", s.buy(size=0.01, exectype=bt.Order.Limit,
                                                        price=29_990.0)), 3: gap}
    strat, _ = run(ex, plan, broker_kw={"resync_every": 3600.0})
    assert statuses(strat, orders["a"].ref) == ["Submitted", "Accepted", "Partial", "Completed"]
    assert fills(strat, orders["a"].ref) == [0.004, 0.01]


# -- fast reconnects ---------------------------------------------------------------------
def test_a_fill_during_a_reconnect_faster_than_any_poll_is_applied_on_the_next_pass():
    ex = FakeBybit()
    orders, seen = {}, {}

    def blink(s):  # down and up again within one pass: is_connected() is never False
        ex.drop()
        ex.trade(29_990.0)
        ex.reconnect()

    plan = {1: lambda s: orders.setdefault("a", s.buy(size=0.01, exectype=bt.Order.Limit,
                                                        price=29_990.0)),
            3: blink, 4: lambda s: seen.setdefault("pos", s.getposition().size)}
    strat, broker = run(ex, plan, broker_kw={"resync_every": 3600.0})
    assert seen["pos"] == 0.01 == ex.position[0]  # on the very next bar, not 60 s later
    assert statuses(strat, orders["a"].ref)[-1] == "Completed"
    assert broker.connects == 2


# -- restarts ----------------------------------------------------------------------------
def test_fills_while_the_runner_was_down_arrive_as_fills_with_their_fees(tmp_path):
    ex = FakeBybit(split=(0.4, 1.0))
    journal = tmp_path / "journal.jsonl"
    saved = {}

    def die(s):
        saved["state"] = s.broker.get_state()  # what StateSaver wrote after the last bar
        raise Killed

    plan = {1: lambda s: s.buy(size=0.01, exectype=bt.Order.Limit, price=29_990.0), 3: die}
    with pytest.raises(Killed):
        run(ex, plan, journal=journal)
    ex.callbacks.clear()  # the dead process's socket is gone
    ex.trade(29_990.0)  # while down: the order fills in two executions
    strat, broker = run(ex, {}, broker_kw={"stale_orders": "adopt"}, resume=saved["state"],
                        journal=journal)
    adopted = [e for e in strat.events if e[2] in ("Partial", "Completed")]
    assert [e[3] for e in adopted] == [0.004, 0.01]
    assert strat.getposition().size == 0.01 == ex.position[0]
    exchange_fees = sum(float(e["execFee"]) for e in ex.executions)
    records = read_records(journal)
    done = [r for r in records if r["status"] == "Completed"]
    assert len(done) == 1 and done[0]["adopted"] and done[0]["link"].startswith("s4-")
    assert done[0]["comm"] == pytest.approx(exchange_fees)
    assert {i for r in records for i in r["exec_ids"]} == {e["execId"] for e in ex.executions}


def test_an_order_placed_just_before_a_crash_is_journaled_once_after_the_restart(tmp_path):
    ex = FakeBybit(market_on_trade=True)
    journal = tmp_path / "journal.jsonl"
    saved = {}

    def place_and_die(s):
        saved["state"] = s.broker.get_state()
        s.buy(size=0.02)  # reaches the exchange; the process dies before any journal line
        raise Killed

    with pytest.raises(Killed):
        run(ex, {1: lambda s: s.buy(size=0.01), 2: lambda s: ex.trade(30_010.0),
                 3: place_and_die}, journal=journal)
    before = read_records(journal)
    assert len({r["link"] for r in before}) == 1  # only the first order made it
    assert [r["status"] for r in before] == ["Submitted", "Accepted", "Completed"]
    ex.callbacks.clear()
    strat, broker = run(ex, {2: lambda s: ex.trade(30_050.0)},
                        broker_kw={"stale_orders": "adopt"}, resume=saved["state"],
                        journal=journal)
    records = read_records(journal)
    links = {r["link"] for r in records}
    assert links == {o["orderLinkId"] for o in ex.orders.values()}  # every exchange order
    events = [(r["link"], r["status"]) for r in records]
    assert len(events) == len(set(events))  # each event once
    late = [r for r in records if r["adopted"]]
    assert [r["status"] for r in late] == ["Submitted", "Accepted", "Completed"]
    assert strat.getposition().size == pytest.approx(0.03) and ex.position[0] == 0.03


def test_a_fill_journaled_before_the_crash_is_not_journaled_again(tmp_path):
    ex = FakeBybit()
    journal = tmp_path / "journal.jsonl"
    saved = {}

    def save(s):
        saved["state"] = s.broker.get_state()
        s.buy(size=0.01)  # fills at once; journaled on the next pass

    def die(s):
        raise Killed

    with pytest.raises(Killed):
        run(ex, {1: save, 3: die}, journal=journal)
    n_before = len(read_records(journal))
    ex.callbacks.clear()
    strat, _ = run(ex, {}, resume=saved["state"], journal=journal)
    # the restarted strategy (its state from before the fill) is told of the fill again
    assert [e[2] for e in strat.events] == ["Submitted", "Accepted", "Completed"]
    assert len(read_records(journal)) == n_before  # the journal already had all three
    assert strat.getposition().size == 0.01 == ex.position[0]


def test_an_earlier_runs_open_order_is_cancelled_adopted_or_kept(tmp_path):
    for policy, status, tracked in (("cancel", "Cancelled", False), ("adopt", "New", True),
                                    ("keep", "New", False)):
        ex = FakeBybit()
        ex.place_order(symbol="BTCUSDT", side="Sell", orderType="Limit", qty="0.02",
                       price="31000", orderLinkId="s4-old-1")
        strat, broker = run(ex, {}, broker_kw={"stale_orders": policy},
                            journal=tmp_path / f"{policy}.jsonl")
        rec = ex._find(orderLinkId="s4-old-1")
        assert rec["orderStatus"] == status, policy
        assert ("s4-old-1" in broker.orders) is tracked, policy
        seen = [r["status"] for r in read_records(tmp_path / f"{policy}.jsonl")]
        assert seen == {"cancel": ["Submitted", "Accepted", "Canceled"],
                        "adopt": ["Submitted", "Accepted"], "keep": []}[policy]


def test_a_state_from_another_network_is_refused_and_a_shadow_state_ignored(caplog):
    ex = FakeBybit()
    store = feeds.BybitStore(api_key="k", api_secret="s", session=ex.session(),
                             ws_factory=ex.ws_factory)
    broker = store.getbroker()
    state = dict(broker.get_state(), network="mainnet")
    with pytest.raises(ValueError, match="network 'mainnet'.*'testnet'"):
        broker.set_state(state)
    broker.set_state({"cash": 10_000.0, "positions": {}})
    assert "another broker's account" in caplog.text and broker._resume is None


class Reconciled(Script):
    def notify_reconcile(self, data, position, open_orders):
        self.events.append((len(self), None, "Reconcile", position.size,
                            [o.info["orderLinkId"] for o in open_orders]))


def test_strategies_are_told_what_the_account_holds_before_their_first_bar():
    ex = FakeBybit()
    ex.place_order(symbol="BTCUSDT", side="Buy", orderType="Market", qty="0.02")
    ex.place_order(symbol="BTCUSDT", side="Sell", orderType="Limit", qty="0.02",
                   price="31000", orderLinkId="s4-old-1")
    store = feeds.BybitStore(api_key="k", api_secret="s", session=ex.session(),
                             ws_factory=ex.ws_factory, symbols=("BTCUSDT",))
    cerebro = bt.Cerebro(stdstats=False, quicknotify=True)
    cerebro.adddata(feeds.ArrayData(dataname=bars()), name="BTCUSDT")
    cerebro.setbroker(store.getbroker(stale_orders="adopt"))
    cerebro.addstrategy(Reconciled, plan={
        2: lambda s: ex.place_order(symbol="BTCUSDT", side="Buy", orderType="Market",
                                    qty="0.005")})  # a trade by hand: taken from the exchange
    strat = cerebro.run(runonce=False)[0]
    told = [e for e in strat.events if e[2] == "Reconcile"]
    assert told[0] == (0, None, "Reconcile", 0.02, ["s4-old-1"])  # before the first bar
    assert told[1][3] == 0.025 and len(told) == 2
