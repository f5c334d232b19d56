"""The kill switch: the pure decisions by hand, then each limit inside cerebro (trips at the
bar it should and not before, cancels open orders, flattens or not, stops the run), the
broker-polled stale-data check, and orders sent after the trip."""

from __future__ import annotations

import datetime as dt
import logging

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

import feeds
from s4_strategies.live.killswitch import (
    KillSwitch,
    RateWindow,
    bar_interval,
    check_daily_loss,
    check_position,
    daily_loss,
    is_stale,
    staleness,
    to_seconds,
)

T0 = pd.Timestamp("2024-01-01 00:00", tz="UTC")
MIN = pd.Timedelta("1min")


# ------------------------------------------------------------------ helpers
def frame(prices, start=T0, freq="1min") -> pd.DataFrame:
    p = np.asarray(prices, dtype=float)
    idx = pd.date_range(start, periods=len(p), freq=freq)
    return pd.DataFrame({"open": p, "high": p, "low": p, "close": p, "volume": 1.0}, index=idx)


class FakeClock:
    """A clock the test moves by hand (or a broker moves per bar)."""

    def __init__(self, t):
        self.t = pd.Timestamp(t)

    def __call__(self):
        return self.t


class PollingBroker(bt.brokers.BackBroker):
    """What a live broker does for watchers: poll each at the end of ``next()``; here the
    clock first advances ``step`` per call (one call per loop of cerebro, bar or not)."""

    def __init__(self, clock=None, step=None):
        super().__init__()
        self.watchers = []
        self.clock, self.step = clock, step
        self.polls = 0

    def next(self):
        if self.step is not None:
            self.clock.t += self.step
        super().next()
        for w in list(self.watchers):
            self.polls += 1
            w.poll(self.clock())


class IdleAfter(feeds.ArrayData):
    """A live feed: serves its frame, then 'no bar yet' (None) ``idle`` times, then ends."""

    params = (("idle", 20),)

    def islive(self):
        return True

    def start(self):
        super().start()
        self.idles = 0

    def _load(self):
        if super()._load():
            return True
        if self.idles < self.p.idle:
            self.idles += 1
            return None
        return False


class Scripted(bt.Strategy):
    """Buys ``every`` units each bar (``plan[i]``: the sizes at bar ``i`` instead), places
    buy limits at ``limits[i]``; resubmits up to ``resubmit`` of its cancelled orders."""

    params = dict(every=0.0, plan=None, limits=None, resubmit=0)

    def __init__(self):
        self.calls, self.sent, self.notified = 0, [], []
        self.resubmits_left = self.p.resubmit

    def next(self):
        i, self.calls = self.calls, self.calls + 1
        sizes = (self.p.plan or {}).get(i, [self.p.every] if self.p.every else [])
        for size in sizes:
            self.sent.append(self.buy(size=size))
        for price in (self.p.limits or {}).get(i, ()):
            self.sent.append(self.buy(size=1, price=price, exectype=bt.Order.Limit))

    def notify_order(self, order):
        self.notified.append((order.ref, order.getstatusname()))
        mine = any(o.ref == order.ref for o in self.sent)
        if order.status == order.Canceled and mine and self.resubmits_left > 0:
            self.resubmits_left -= 1
            self.sent.append(self.buy(size=1))


def run(prices, strategy=None, killswitch=None, *, quicknotify=False, broker=None,
        freq="1min", start=T0, feed=None, cash=10_000.0):
    cerebro = bt.Cerebro(quicknotify=quicknotify, stdstats=False)
    if broker is not None:
        cerebro.setbroker(broker)
    cerebro.broker.setcash(cash)
    minutes = int(pd.Timedelta(freq) / MIN)
    cls, extra = feed or (feeds.ArrayData, {})
    data = cls(dataname=frame(prices, start=start, freq=freq), timeframe=bt.TimeFrame.Minutes,
               compression=minutes, **extra)
    cerebro.adddata(data, name="BTCUSDT")
    cerebro.addstrategy(Scripted, **(strategy or {}))
    kw = {"clock": FakeClock(start), **(killswitch or {})}
    cerebro.addanalyzer(KillSwitch, _name="ks", **kw)
    strat = cerebro.run(runonce=False)[0]
    return strat, strat.analyzers.ks, data


def errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.ERROR and r.getMessage().startswith("kill switch")]


def position(strat) -> float:
    return strat.broker.getposition(strat.data).size


FLAT = [100.0] * 10


# ------------------------------------------------------------------ the pure decisions
def test_check_position_by_hand():
    assert check_position(2.0, 100.0, max_position=2.0) is None  # reaching is no breach
    assert check_position(-2.5, 100.0, max_position=2.0) == {
        "limit": "max_position", "limit_value": 2.0, "observed": 2.5}
    assert check_position(3.0, 100.0, max_notional=300.0) is None
    assert check_position(-3.0, 101.0, max_notional=300.0) == {
        "limit": "max_notional", "limit_value": 300.0, "observed": 303.0}
    assert check_position(1e9, 1e9) is None  # both off
    assert check_position(0.0, 100.0, 0.5, 1.0) is None


def test_daily_loss_by_hand():
    assert daily_loss(10_000.0, 9_800.0) == (200.0, 0.02)
    assert daily_loss(10_000.0, 10_500.0) == (-500.0, -0.05)
    loss, pct = daily_loss(0.0, -10.0)
    assert loss == 10.0 and np.isnan(pct)
    assert check_daily_loss(10_000.0, 9_900.0, max_loss=100.0) is None
    assert check_daily_loss(10_000.0, 9_899.5, max_loss=100.0) == {
        "limit": "max_daily_loss", "limit_value": 100.0, "observed": 100.5}
    assert check_daily_loss(10_000.0, 9_850.0, max_loss_pct=0.015) is None
    assert check_daily_loss(10_000.0, 9_800.0, max_loss_pct=0.015) == {
        "limit": "max_daily_loss_pct", "limit_value": 0.015, "observed": 0.02}
    assert check_daily_loss(10_000.0, 5_000.0) is None


def test_staleness_by_hand():
    last = T0  # the bar of 00:00, closed at 00:01
    assert staleness(T0 + 4 * MIN, last, 60.0) == 3.0
    assert not is_stale(T0 + 4 * MIN, last, 60.0, 3)  # exactly 3 intervals: not yet
    assert is_stale(T0 + 4 * MIN + pd.Timedelta("1s"), last, 60.0, 3)
    # before the first bar: counted from `since`
    assert staleness(T0 + 90 * pd.Timedelta("1s"), None, 60.0, since=T0) == 1.5
    assert not is_stale(T0 + 2 * MIN, None, 60.0, 2, since=T0)
    assert is_stale(T0 + 2 * MIN + pd.Timedelta("1ms"), None, 60.0, 2, since=T0)
    # history older than the start is not stale; numbers are epoch seconds
    since = to_seconds(T0 + 60 * MIN)
    assert staleness(since + 30, T0, 60.0, since=since) == 0.5
    with pytest.raises(ValueError):
        staleness(T0, None, 60.0)


def test_rate_window_by_hand():
    w = RateWindow(3, 60)
    assert [w.add(t) for t in (0, 20, 40)] == [1, 2, 3]
    assert w.add(60) == 3  # 0 left the window (t - 60, t]
    assert w.add(60) == 4  # a 4th within 60 s: more than max_events
    assert w.count(119) == 2 and w.count(120) == 0
    assert w.add(pd.Timestamp(500, unit="s", tz="UTC")) == 1
    with pytest.raises(ValueError):
        RateWindow(0, 60)


def test_time_helpers():
    assert bar_interval(bt.TimeFrame.Minutes, 15) == 900.0
    assert bar_interval(bt.TimeFrame.Days) == 86_400.0
    assert bar_interval(bt.TimeFrame.Ticks) is None
    epoch = T0.value / 1e9
    assert to_seconds(T0) == to_seconds(T0.tz_localize(None)) == epoch
    assert to_seconds(dt.datetime(2024, 1, 1)) == epoch and to_seconds(5) == 5.0


# ------------------------------------------------------------------ limits inside cerebro
def test_no_limit_breached_runs_to_the_end():
    strat, ks, _ = run(FLAT, {"every": 1.0},
                       {"max_position": 100, "max_daily_loss": 1_000, "max_orders": 50})
    assert strat.calls == len(FLAT)
    out = ks.get_analysis()
    assert out["tripped"] is None and not out["stopped"]
    assert out["limits"]["max_position"] == 100 and out["limits"]["flatten"] is False
    assert out["day"] == "2024-01-01" and out["day_start_value"] == 10_000.0
    assert out["last_bars"] == {"BTCUSDT": "2024-01-01T00:09:00+00:00"}


def test_max_position_trips_at_its_bar_cancels_orders_and_leaves_the_position(caplog):
    # one unit bought per bar, filled at the next open: the position is i at bar i
    strat, ks, _ = run(FLAT, {"every": 1.0, "limits": {0: [50.0]}}, {"max_position": 2.5})
    assert strat.calls == 4  # bars 0..3, trips at bar 3 (position 3), nothing after
    r = ks.tripped
    assert (r["limit"], r["limit_value"], r["observed"], r["data"]) == (
        "max_position", 2.5, 3.0, "BTCUSDT")
    assert r["time"] == T0.isoformat()
    msg = ("kill switch: BTCUSDT position 3 exceeds max_position 2.5; "
           "cancelling 2 open orders, stopping")
    assert r["message"] == msg and errors(caplog) == [msg]
    limit, sent_on_trip_bar = strat.sent[1], strat.sent[-1]
    assert limit.status == bt.Order.Canceled  # resting limit order
    assert sent_on_trip_bar.status == bt.Order.Canceled  # submitted, not yet accepted
    assert position(strat) == 3.0  # flatten=False leaves it
    assert ks.get_analysis()["cancelled"] == 2 and ks.get_analysis()["stopped"]


def test_max_position_with_flatten_closes_then_stops(caplog):
    strat, ks, _ = run(FLAT, {"every": 1.0, "limits": {0: [50.0]}},
                       {"max_position": 2.5, "flatten": True}, quicknotify=True)
    assert strat.calls == 4  # the close fills at bar 4's open; stopped before its next
    assert position(strat) == 0.0
    assert errors(caplog) == ["kill switch: BTCUSDT position 3 exceeds max_position 2.5; "
                              "cancelling 2 open orders, flattening BTCUSDT, stopping"]
    out = ks.get_analysis()
    assert out["flatten_orders"] == 1 and out["stopped"] and out["after_trip"] == 0


def test_max_notional_follows_the_price(caplog):
    strat, ks, _ = run([100, 100, 200, 300, 300, 300], {"plan": {0: [1.0]}},
                       {"max_notional": 250.0, "currency": "USDT"})
    assert strat.calls == 4  # notional 100, 200 then 300 at bar 3
    assert ks.tripped["observed"] == 300.0
    assert errors(caplog) == ["kill switch: BTCUSDT notional 300.00 USDT exceeds "
                              "max_notional 250.00; cancelling 0 open orders, stopping"]


# 10 units bought at 100 (bar 1): value 10,000 until bar 3, then -50, -100, -200
DROP = [100, 100, 100, 95, 90, 80, 80, 80]


def test_max_daily_loss_trips_when_the_loss_exceeds_it(caplog):
    strat, ks, _ = run(DROP, {"plan": {0: [10.0]}},
                       {"max_daily_loss": 150.0, "currency": "USDT", "flatten": True},
                       quicknotify=True)
    assert strat.calls == 6  # loss 100 at bar 4 is fine, 200 at bar 5 is not
    r = ks.tripped
    assert (r["limit"], r["limit_value"], r["observed"]) == ("max_daily_loss", 150.0, 200.0)
    assert errors(caplog) == ["kill switch: daily loss 200.00 USDT exceeds max_daily_loss "
                              "150.00; cancelling 0 open orders, flattening BTCUSDT, stopping"]
    assert ks.get_analysis()["day_start_value"] == 10_000.0
    assert position(strat) == 0.0


def test_max_daily_loss_pct():
    strat, ks, _ = run(DROP, {"plan": {0: [10.0]}}, {"max_daily_loss_pct": 0.012})
    assert strat.calls == 6
    assert ks.tripped["observed"] == pytest.approx(0.02)
    assert ks.tripped["message"].startswith(
        "kill switch: daily loss 2.00% exceeds max_daily_loss_pct 1.20%; ")


def test_daily_loss_restarts_at_the_utc_day():
    # hourly bars from 21:00: -100 by 23:00; the new day starts from the value before its
    # first bar (9,900 after 23:00), so the 00:00 bar's -50 counts for it: -200 by 02:00
    prices = [100, 100, 90, 85, 80, 70, 70]
    strat, ks, _ = run(prices, {"plan": {0: [10.0]}}, {"max_daily_loss": 120.0},
                       freq="1h", start=pd.Timestamp("2024-01-01 21:00", tz="UTC"))
    assert strat.calls == 6
    assert ks.tripped["observed"] == pytest.approx(200.0)
    out = ks.get_analysis()
    assert out["day"] == "2024-01-02" and out["day_start_value"] == pytest.approx(9_900.0)


def test_a_loss_inside_the_first_bar_of_the_day_counts():
    # one bar a day: the whole 500 loss happens inside the second day's first (only) bar
    prices = [100, 100, 50]
    strat, ks, _ = run(prices, {"plan": {0: [10.0]}}, {"max_daily_loss": 100.0}, freq="1D")
    assert ks.tripped is not None and ks.tripped["limit"] == "max_daily_loss"
    assert ks.tripped["observed"] == pytest.approx(500.0)


def test_a_value_that_is_not_a_number_trips_instead_of_passing():
    assert check_daily_loss(10_000.0, float("nan"), max_loss=100.0)["limit"] == "invalid_input"
    assert check_daily_loss(float("nan"), 9_000.0, max_loss_pct=0.1)["limit"] == "invalid_input"
    assert check_daily_loss(10_000.0, float("nan")) is None  # no limit on: nothing to check
    assert check_position(float("nan"), 100.0, max_position=1.0)["limit"] == "invalid_input"
    r = check_position(1.0, float("nan"), max_notional=1e6)
    assert r["limit"] == "invalid_input" and r["limit_value"] == "max_notional"
    assert check_position(1.0, float("nan"), max_position=5.0) is None  # size is known


def test_order_rate_with_a_clock_advancing_per_bar(caplog):
    clock = FakeClock(T0)
    broker = PollingBroker(clock, step=pd.Timedelta("20s"))
    # one order per bar is 3 per 60 s (never more), two at bar 5 make 4 within 60 s
    strat, ks, _ = run([100.0] * 12, {"every": 1.0, "plan": {5: [1.0, 1.0]}},
                       {"max_orders": 3, "per_seconds": 60, "clock": clock},
                       quicknotify=True, broker=broker)
    assert strat.calls == 6  # the 4th is notified at bar 6, before its next
    r = ks.tripped
    assert (r["limit"], r["limit_value"], r["observed"], r["per_seconds"]) == (
        "max_orders", 3, 4, 60.0)
    assert r["time"] == (T0 + pd.Timedelta("140s")).isoformat()
    assert errors(caplog) == ["kill switch: 4 orders in 60 s exceeds max_orders 3 per 60 s; "
                              "cancelling 0 open orders, stopping"]
    assert ks.get_analysis()["orders_in_window"] == 4


# ------------------------------------------------------------------ stale data
def test_stale_data_polled_by_the_broker_without_bars(caplog):
    # bar i (open 00:0i) is served at 00:0i:90 s; after the 5th the feed goes quiet
    clock = FakeClock(T0 + pd.Timedelta("30s"))
    broker = PollingBroker(clock, step=MIN)
    strat, ks, data = run([100.0] * 5, {"limits": {0: [50.0]}},
                          {"stale_intervals": 3, "clock": clock}, broker=broker,
                          feed=(IdleAfter, {}))
    assert strat.calls == 5
    assert data.idles == 3  # 1.5, 2.5 intervals pass, 3.5 > 3 trips
    r = ks.tripped
    assert (r["limit"], r["observed"], r["interval_s"]) == ("stale_intervals", 3.5, 60.0)
    assert r["last_bar"] == "2024-01-01T00:04:00+00:00"
    assert r["time"] == "2024-01-01T00:08:30+00:00"
    assert errors(caplog) == ["kill switch: BTCUSDT has had no bar for 210 s (3.50 intervals "
                              "of 60 s) exceeds stale_intervals 3; cancelling 1 open order, "
                              "stopping"]
    assert strat.sent[0].status == bt.Order.Canceled
    assert broker.watchers == []  # detached at stop


def test_stale_before_the_first_bar_counts_from_the_start():
    clock = FakeClock(T0)
    broker = PollingBroker(clock, step=MIN)
    strat, ks, data = run([], {}, {"stale_intervals": 2, "clock": clock}, broker=broker,
                          feed=(IdleAfter, {}))
    assert strat.calls == 0 and data.idles == 3  # 1, 2, then 3 minutes after the start
    assert ks.tripped["observed"] == 3.0 and ks.tripped["last_bar"] is None


def test_stale_with_flatten_stops_after_the_timeout_when_nothing_fills(caplog):
    clock = FakeClock(T0 + pd.Timedelta("30s"))
    broker = PollingBroker(clock, step=MIN)
    strat, ks, data = run([100.0] * 5, {"plan": {0: [1.0]}},
                          {"stale_intervals": 3, "clock": clock, "flatten": True},
                          broker=broker, feed=(IdleAfter, {}))
    assert data.idles == 4  # tripped at the 3rd quiet poll, gave up at the next (60 s > 30 s)
    assert position(strat) == 1.0  # a simulated fill needs a bar
    assert errors(caplog)[1:] == [
        "kill switch: closing orders still open after 30 s; stopping anyway"]
    assert ks.get_analysis()["stopped"]


def test_poll_directly_after_a_run():
    last_close = T0 + 5 * MIN
    strat, ks, _ = run([100.0] * 5, {"plan": {0: [1.0]}},
                       {"stale_intervals": 3, "clock": FakeClock(last_close)})
    assert strat.calls == 5 and ks.tripped is None
    assert ks.poll(last_close + 3 * MIN) is None  # exactly 3 intervals
    r = ks.poll(last_close + 3 * MIN + pd.Timedelta("1s"))
    assert r["limit"] == "stale_intervals" and r["observed"] == pytest.approx(181 / 60)
    assert ks.poll(last_close + 10 * MIN) is r  # once


# ------------------------------------------------------------------ after the trip
def test_orders_sent_after_the_trip_are_cancelled():
    # without quicknotify the close is notified at bar 4, after which the strategy's
    # next still runs once: what it sends there is cancelled
    strat, ks, _ = run(FLAT, {"every": 1.0}, {"max_position": 2.5, "flatten": True})
    assert strat.calls == 5 and position(strat) == 0.0
    late = strat.sent[-1]
    assert late.status == bt.Order.Canceled
    assert (strat.sent[-2].ref, "Canceled") in strat.notified  # the trip bar's order
    assert ks.get_analysis()["after_trip"] == 1


def test_a_strategy_resubmitting_cancelled_orders_sees_them_cancelled(caplog):
    strat, ks, _ = run(FLAT, {"every": 1.0, "resubmit": 2}, {"max_position": 2.5,
                                                             "flatten": True},
                       quicknotify=True)
    assert strat.calls == 4 and position(strat) == 0.0
    resent = strat.sent[-2:]
    assert [o.status for o in resent] == [bt.Order.Canceled] * 2
    assert all((o.ref, "Canceled") in strat.notified for o in resent)
    assert ks.get_analysis()["after_trip"] == 2
    assert len(errors(caplog)) == 1


def test_on_trip_is_called_once_and_a_failing_one_does_not_block_the_stop(caplog):
    seen = []

    def on_trip(reason):
        seen.append(reason)
        raise RuntimeError("pager down")

    strat, ks, _ = run(FLAT, {"every": 1.0}, {"max_position": 2.5, "on_trip": on_trip})
    assert seen == [ks.tripped] and strat.calls == 4
    assert any("on_trip callback failed" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------ wiring
def test_attach_only_to_brokers_with_watchers():
    ks = KillSwitch.__new__(KillSwitch)  # attach needs no running strategy
    assert ks.attach(bt.brokers.BackBroker()) is False
    broker = PollingBroker()
    assert ks.attach(broker) and ks.attach(broker)
    assert broker.watchers == [ks]


@pytest.mark.parametrize("kw, match", [
    ({"max_position": 0}, "max_position must be a finite number > 0"),
    ({"max_daily_loss_pct": 1.5}, "max_daily_loss_pct must be a finite number > 0 and <= 1"),
    ({"max_orders": 3, "per_seconds": 0}, "per_seconds must be a finite number > 0"),
    ({"stale_intervals": float("inf")}, "stale_intervals must be a finite number"),
    ({"max_position": float("nan")}, "max_position must be a finite number"),
    ({"max_daily_loss": "100"}, "max_daily_loss must be a finite number"),
])
def test_bad_params_fail_at_start(kw, match):
    with pytest.raises(ValueError, match=match):
        run(FLAT, {}, kw)


def test_tick_data_needs_interval_s():
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feeds.ArrayData(dataname=frame(FLAT), timeframe=bt.TimeFrame.Ticks))
    cerebro.addstrategy(Scripted)
    cerebro.addanalyzer(KillSwitch, stale_intervals=3, clock=FakeClock(T0))
    with pytest.raises(ValueError, match="pass interval_s"):
        cerebro.run(runonce=False)
