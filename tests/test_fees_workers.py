"""Fees that survive backtrader's own machinery: ``optstrategy`` pickles the broker into its
worker processes, and the Bybit fee of ``fees="bybit"`` must still be charged there; a sweep
charges it in every task."""

from __future__ import annotations

import backtrader as bt
import pytest

import feeds
from s4_strategies import sweep
from s4_strategies.fees import BYBIT_TAKER, apply_fees, has_default_commission


class Flip(bt.Strategy):
    """Long above the SMA, flat below: many fills, each paying the fee."""

    params = dict(period=10, fees="bybit")

    def __init__(self):
        apply_fees(self.broker, self.datas, self.p.fees)
        self.sma = bt.ind.SMA(period=self.p.period)

    def next(self):
        if self.data.close[0] > self.sma[0] and self.position.size <= 0:
            self.order_target_percent(target=0.9)
        elif self.data.close[0] < self.sma[0] and self.position.size > 0:
            self.order_target_percent(target=0.0)


class Paid(bt.Analyzer):
    """Commission paid, the commission rate in force and the final value."""

    def start(self):
        self.comm = 0.0

    def notify_order(self, order):
        if order.status == order.Completed:
            self.comm += order.executed.comm

    def stop(self):
        self.value = self.strategy.broker.getvalue()
        self.rate = self.strategy.broker.getcommissioninfo(self.data).p.commission

    def get_analysis(self):
        return {"comm": self.comm, "value": self.value, "rate": self.rate}


def _optimise(maxcpus: int) -> list[dict]:
    df = feeds.load_embedded("bybit:BTCUSDT:60", todate="2021-02-15")
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feeds.ArrayData(dataname=df))
    cerebro.optstrategy(Flip, period=[10, 20])
    cerebro.addanalyzer(Paid, _name="paid")
    runs = cerebro.run(maxcpus=maxcpus)
    return [r[0].analyzers.paid.get_analysis() for r in runs]


def test_optstrategy_workers_charge_the_same_fees_as_one_process():
    one, two = _optimise(1), _optimise(2)
    assert [r["rate"] for r in two] == [BYBIT_TAKER] * 2
    assert all(r["comm"] > 0 for r in two)
    for a, b in zip(one, two):
        assert b["comm"] == pytest.approx(a["comm"], rel=1e-12)
        assert b["value"] == pytest.approx(a["value"], rel=1e-12)


def test_a_copied_default_commission_is_still_the_default_one():
    import pickle

    broker = bt.brokers.BackBroker()
    assert has_default_commission(pickle.loads(pickle.dumps(broker)))
    broker.setcommission(commission=0.0)  # set by the user, even if zero: kept
    assert not has_default_commission(pickle.loads(pickle.dumps(broker)))


def test_a_sweep_charges_the_fee_in_its_tasks():
    df = feeds.load_embedded("yahoo:AAPL:1d")
    grid = {"fast": [5], "slow": [20]}
    paid = sweep(bt.strategies.MA_CrossOver, datas=[df], grid=grid, serial=True,
                 analyzers={"paid": Paid})
    free = sweep(bt.strategies.MA_CrossOver, datas=[df], grid=grid, serial=True,
                 analyzers={"paid": Paid}, fees=None)
    assert paid.loc[0, "paid.rate"] == BYBIT_TAKER and paid.loc[0, "paid.comm"] > 0
    assert free.loc[0, "paid.comm"] == 0 and paid.loc[0, "value"] < free.loc[0, "value"]
    with pytest.raises(ValueError, match="fees="):
        sweep(bt.strategies.MA_CrossOver, datas=[df], grid=grid, serial=True, fees="binance")
