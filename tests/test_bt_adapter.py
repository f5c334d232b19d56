"""The backtrader adapter of the fill-model broker: pinned version, the private BackBroker
methods it relies on, and its hooks.

``test_installed_backtrader_is_the_pinned_version`` is meant to fail after a backtrader
upgrade: re-check ``s4_strategies/market_making/bt_adapter.py`` against the new
``backtrader/brokers/bbroker.py`` before moving the pin.
"""

import inspect
import warnings

import backtrader as bt
import pandas as pd
import pytest

from feeds import ArrayData
from s4_strategies.market_making.bt_adapter import (
    BACKBROKER_SIGNATURES,
    BACKTRADER_VERSION,
    BackBrokerHooks,
    check_backtrader_version,
)

BackBroker = bt.brokers.BackBroker


def test_installed_backtrader_is_the_pinned_version():
    assert bt.__version__ == BACKTRADER_VERSION, (
        f"backtrader {bt.__version__} is installed but the fill-model adapter overrides "
        f"private BackBroker methods and was verified against {BACKTRADER_VERSION}: re-check "
        f"s4_strategies/market_making/bt_adapter.py, then update BACKTRADER_VERSION")


@pytest.mark.parametrize("name", sorted(BACKBROKER_SIGNATURES))
def test_backbroker_methods_have_the_expected_signatures(name):
    assert callable(getattr(BackBroker, name, None)), f"BackBroker.{name} is gone"
    assert str(inspect.signature(getattr(BackBroker, name))) == BACKBROKER_SIGNATURES[name]
    if name in vars(BackBrokerHooks):  # an override keeps backtrader's signature
        assert str(inspect.signature(vars(BackBrokerHooks)[name])) == \
            BACKBROKER_SIGNATURES[name]


def test_adapter_overrides_only_the_declared_methods():
    overridden = {n for n, v in vars(BackBrokerHooks).items()
                  if inspect.isfunction(v) and hasattr(BackBroker, n)}
    assert overridden <= set(BACKBROKER_SIGNATURES)
    assert {n for n in BACKBROKER_SIGNATURES if n.startswith("_")} <= overridden


def test_backbroker_internals_the_adapter_relies_on():
    # next() matches every active pending order through _try_exec
    assert "self._try_exec(order)" in inspect.getsource(BackBroker.next)
    # _execute sizes a real fill with the filler param
    assert "self.p.filler(order, price, ago)" in inspect.getsource(BackBroker._execute)
    assert "filler" in BackBroker.params._getkeys()


def test_version_mismatch_warns():
    with pytest.warns(RuntimeWarning, match="private BackBroker methods"):
        assert check_backtrader_version("9.9.9") is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_backtrader_version(BACKTRADER_VERSION) is True


# ----------------------------------------------------------------- behaviour
T0 = pd.Timestamp("2024-01-01", tz="UTC")
BARS = [(100, 101, 99.5, 100), (100, 101, 98, 100), (100, 101, 98, 100), (100, 101, 98, 100)]


class Partial(BackBrokerHooks):
    """Fills a limit order at its price, ``qty`` per bar, when the low reaches it."""

    params = (("qty", 0.4),)

    def init(self):
        super().init()
        self.log = []

    def on_submit(self, order):
        self.log.append(("submit", order.ref))

    def on_cancel(self, order):
        self.log.append(("cancel", order.ref))

    def executing(self, order):
        self.log.append(("execute", order.ref))
        return super().executing(order)

    def match(self, order):
        self.log.append(("match", order.ref))
        if order.exectype == bt.Order.Limit and order.data.low[0] <= order.created.price:
            self.fill(order, order.created.price, qty=self.p.qty)
        else:
            self.match_default(order)


class OneBid(bt.Strategy):
    params = dict(cancel_at=None)

    def __init__(self):
        self.fills = []

    def notify_order(self, order):
        for bit in order.executed.iterpending():
            self.fills.append((len(self.data) - 1, bit.size, bit.price))

    def next(self):
        if len(self.data) == 1:
            self.order = self.buy(price=99.0, size=1.0, exectype=bt.Order.Limit)
        elif len(self.data) - 1 == self.p.cancel_at:
            self.cancel(self.order)


def run(broker, **kw):
    frame = pd.DataFrame(BARS, columns=["open", "high", "low", "close"],
                         index=pd.date_range(T0, periods=len(BARS), freq="1h")).assign(volume=1.0)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker = broker
    cerebro.broker.setcash(1e6)
    cerebro.adddata(ArrayData(dataname=frame), name="X")
    cerebro.addstrategy(OneBid, **kw)
    return cerebro.run()[0], broker


def test_limit_order_fills_through_the_hook_in_parts():
    strat, broker = run(Partial())
    assert strat.fills == [(1, 0.4, 99.0), (2, 0.4, 99.0), (3, pytest.approx(0.2), 99.0)]
    assert broker.getposition(strat.data).size == pytest.approx(1.0)
    ref = strat.order.ref
    assert broker.log[0] == ("submit", ref)
    assert [e for e, r in broker.log if r == ref].count("match") == 3
    assert [e for e, r in broker.log if r == ref].count("execute") >= 3  # + the submit check


def test_cancel_hook_and_user_filler_still_caps_fills():
    strat, broker = run(Partial(filler=lambda order, price, ago: 0.25), cancel_at=2)
    assert [f[1] for f in strat.fills] == [0.25, 0.25]
    assert ("cancel", strat.order.ref) in broker.log
    strat, _ = run(Partial(qty=None))
    assert [f[1] for f in strat.fills] == [1.0]


def test_default_hooks_match_like_backtrader():
    ours, _ = run(BackBrokerHooks())
    theirs, _ = run(BackBroker())
    assert ours.fills == theirs.fills == [(1, 1.0, 99.0)]
