"""Rolling estimation and per-instrument parameters with plain numbers: no Cerebro."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from s4_strategies.market_making import calibration as cal
from s4_strategies.market_making.estimation import RollingEstimator, drift_from_return
from s4_strategies.market_making.instrument import (
    InstrumentParams,
    instrument_params,
    validate_params,
)
from s4_strategies.market_making.session import close_ramp


# ----------------------------------------------------------------- sigma
def test_sigma_of_a_known_random_walk():
    rng = np.random.default_rng(1)
    sigma, dt, n = 2.0, 0.5, 20_000
    # a level far from zero: the walk's ±800 must stay a price (<= 0 is dropped as bad data)
    mids = 10_000.0 + np.cumsum(rng.normal(0.0, sigma * math.sqrt(dt), n))
    # a window of a quarter of the walk, recalibrated every 1000 s
    est = RollingEstimator(ticks=True, sigma_window=n * dt / 4, recalibrate=1_000.0)
    for i, m in enumerate(mids):
        est.update(i * dt, float(m))
        if i * dt < 0.25 * est.sigma_window:
            assert est.sigma is None  # the marks do not span a quarter of the window yet
    assert est.sigma == pytest.approx(sigma, rel=0.05)
    assert est.kappa is None and not est.ready("as")
    start = (n - 1) * dt - est.sigma_window
    assert est.marks[0][0] >= start and len(est.marks) == n // 4 + 1
    # the estimate is realized_sigma over the window as it was at the last calibration
    t_last = est.next_calib - est.recalibrate
    times = np.arange(n) * dt
    in_window = (times >= t_last - est.sigma_window) & (times <= t_last)
    assert est.sigma == pytest.approx(cal.realized_sigma(times[in_window], mids[in_window]))


def test_sigma_from_trade_prices_and_bar_closes():
    ticks = RollingEstimator(ticks=True, sigma_source="trade", sigma_window=10.0,
                             recalibrate=0.0)
    for t, price in enumerate([100.0, 101.0, float("nan"), 99.0, 99.0]):
        ticks.update(float(t), 100.0, trade_price=price, trade_side=1.0)
    # marks at 0, 1, 3, 4 with prices 100, 101, 99, 99: Σ(Δp)² = 5 over 4 s
    assert [m[1] for m in ticks.marks] == [100.0, 101.0, 99.0, 99.0]
    assert ticks.sigma == pytest.approx(math.sqrt(5 / 4))
    bars = RollingEstimator(sigma_source="trade", sigma_window=10.0, recalibrate=0.0)
    for t, close in enumerate([10.0, 11.0, 9.0, 9.0]):
        bars.update(float(t), 50.0, high=60.0, low=40.0, close=close)
    assert bars.sigma == pytest.approx(math.sqrt(5 / 3))


# ----------------------------------------------------------------- A, kappa
def test_a_kappa_from_synthetic_poisson_trades():
    rng = np.random.default_rng(2)
    A, kappa, T = 4.0, 0.5, 3_000.0
    n = rng.poisson(A * T)
    times = np.sort(rng.uniform(0.0, T, n))
    dist = rng.exponential(1.0 / kappa, n)          # P(distance ≥ d) = e^(−kappa·d)
    side = rng.choice([-1.0, 1.0], n)
    est = RollingEstimator(ticks=True, calib_window=2 * T, recalibrate=math.inf, sigma=1.0)
    est.update(0.0, 100.0)  # the clock starts at 0
    for t, d, s in zip(times, dist, side, strict=True):
        est.update(float(t), 100.0, trade_price=100.0 + s * d, trade_side=s)
    est.calibrate(T)
    assert est.kappa == pytest.approx(kappa, rel=0.1)
    assert est.A == pytest.approx(A, rel=0.15)
    assert est.ready("glft")


def test_a_kappa_from_synthetic_poisson_excursions():
    # arrivals at depth ≥ d are Poisson with rate A·e^(−kappa·d): the furthest one in a bar of
    # dt seconds has P(excursion < d) = exp(−A·dt·e^(−kappa·d))
    rng = np.random.default_rng(3)
    A, kappa, dt, n = 5e-4, 0.01, 3600.0, 4000

    def excursion(u):
        return -np.log(-np.log(u) / (A * dt)) / kappa

    up, dn = excursion(rng.uniform(size=n)), excursion(rng.uniform(size=n))
    est = RollingEstimator(calib_window=math.inf, recalibrate=math.inf, min_bars=100)
    mid = 10_000.0  # excursions reach hundreds: the low must stay a price (> 0)
    est.update(0.0, mid, high=mid, low=mid, close=mid)
    for i in range(n):
        est.update((i + 1) * dt, mid, high=mid + up[i], low=mid - dn[i], close=mid)
    assert len(est.excursions) == n
    est.calibrate(n * dt, bar_seconds=dt)
    assert est.kappa == pytest.approx(kappa, rel=0.1)
    assert est.A == pytest.approx(A, rel=0.2)


def test_given_values_stay_fixed_and_too_few_samples_keep_the_last_estimate():
    rng = np.random.default_rng(4)
    est = RollingEstimator(ticks=True, A=7.0, min_trades=50, recalibrate=0.0)
    for i in range(49):
        est.update(float(i), 100.0, trade_price=100.0 + rng.exponential(2.0), trade_side=1.0)
    assert est.kappa is None and est.A == 7.0  # not enough trades yet
    for i in range(49, 300):
        est.update(float(i), 100.0, trade_price=100.0 + rng.exponential(2.0), trade_side=1.0)
    assert est.A == 7.0 and est.kappa > 0
    fixed = RollingEstimator(ticks=True, sigma=1.5, A=2.0, kappa=0.3, recalibrate=0.0)
    for i in range(100):
        fixed.update(float(i), 100.0 + i, trade_price=101.0 + i, trade_side=1.0)
    assert fixed.estimates() == dict(sigma=1.5, A=2.0, kappa=0.3)


def test_recalibrates_every_recalibrate_seconds():
    est = RollingEstimator(sigma_window=4.0, recalibrate=10.0)
    prices = [100, 101, 100, 101, 100, 101, 100, 101, 100, 101, 100, 100, 100, 100]
    for t, m in enumerate(prices):
        est.update(float(t), float(m))
    # calibrated at t = 0 (too few marks) and t = 10 (marks 6..10, alternating): 1 per √s
    assert est.next_calib == 20.0
    assert est.sigma == pytest.approx(1.0)


# ----------------------------------------------------------------- trend
def test_ema_drift_on_a_ramp_returns_the_slope():
    mu, dt = 0.25, 2.0
    est = RollingEstimator(trend_fast=10.0, trend_slow=40.0)
    for i in range(2_000):
        est.update(i * dt, 100.0 + mu * i * dt)
        if i * dt < 40.0:
            assert est.ema_drift() == 0.0  # less than trend_slow seconds of data
    assert est.ema_drift() == pytest.approx(mu, rel=1e-9)
    down = RollingEstimator(trend_fast=10.0, trend_slow=40.0)
    for i in range(2_000):
        down.update(i * dt, 2_000.0 - mu * i * dt)  # stays > 0
    assert down.ema_drift() == pytest.approx(-mu, rel=1e-9)


def test_ema_drift_is_zero_when_both_emas_are_faster_than_the_sampling():
    est = RollingEstimator(trend_fast=1.0, trend_slow=5.0)
    for i in range(200):
        est.update(i * 3600.0, 100.0 + i)  # hourly samples, EMAs of seconds
    assert est.ema_drift() == 0.0


def test_drift_from_return():
    assert drift_from_return(math.log(1.01), 100.0, 10.0) == pytest.approx(0.1)
    assert drift_from_return(float("nan"), 100.0, 10.0) == 0.0


# ----------------------------------------------------------------- windows
def test_windows_drop_old_samples():
    est = RollingEstimator(ticks=True, sigma_window=10.0, calib_window=25.0)
    for t in range(100):
        est.update(float(t), 100.0, trade_price=100.5, trade_side=1.0)
    assert [m[0] for m in est.marks] == [float(t) for t in range(89, 100)]
    assert [x[0] for x in est.trades] == [float(t) for t in range(74, 100)]
    assert all(x[1] == 0.5 for x in est.trades)
    assert not est.excursions
    bars = RollingEstimator(calib_window=3.0)
    for t in range(10):
        bars.update(float(t), 100.0 + t, high=102.0 + t, low=99.0 + t, close=100.0 + t)
    # excursions from the previous mid: high − (mid − 1) = 3, (mid − 1) − low = 0
    assert list(bars.excursions) == [(float(t), 3.0, 0.0) for t in range(6, 10)]


def test_trade_side_is_inferred_from_the_mid_when_missing():
    est = RollingEstimator(ticks=True)
    est.update(0.0, 100.0, trade_price=99.0)
    est.update(1.0, 100.0, trade_price=101.0, trade_side=float("nan"))
    est.update(2.0, 100.0, trade_price=99.5, trade_side=1.0)  # a buy below the mid
    assert [x[1] for x in est.trades] == [1.0, 1.0, -0.5]


def test_from_params_and_sigma_source_check():
    p = SimpleNamespace(sigma=None, A=None, kappa=0.2, sigma_window=30.0, calib_window=60.0,
                        recalibrate=5.0, trend_fast=1.0, trend_slow=2.0, min_trades=3,
                        min_bars=4, sigma_source="mid", gamma=1.0)
    est = RollingEstimator.from_params(p, ticks=True)
    assert est.ticks and est.kappa == 0.2 and est.calib_window == 60.0 and est.min_bars == 4
    with pytest.raises(ValueError, match="sigma_source"):
        RollingEstimator(sigma_source="vwap")


def test_close_ramp():
    assert close_ramp(math.inf, 60.0) == 0.0
    assert close_ramp(90.0, 60.0) == 0.0
    assert close_ramp(15.0, 60.0) == pytest.approx(0.75)
    assert close_ramp(0.0, 60.0) == 1.0
    assert close_ramp(10.0, 0.0) == 0.0


def test_calibration_module_is_unchanged_by_the_estimator():
    # the estimator feeds calibrate_from_trades exactly the window it holds
    est = RollingEstimator(ticks=True, calib_window=1e9, recalibrate=math.inf, sigma=1.0)
    d = np.linspace(0.01, 5.0, 200)
    for i, x in enumerate(d):
        est.update(float(i), 100.0, trade_price=100.0 + x, trade_side=1.0)
    est.calibrate(199.0)
    assert (est.A, est.kappa) == cal.calibrate_from_trades(d, 199.0)


# ----------------------------------------------------------------- instrument params
BASE = dict(model="as", gamma=3e-3, sigma=None, A=None, kappa=None, lot=0.01, tick=0.01,
            size_step=0.0001, max_inventory=5.0, eta=0.3, horizon=60.0, sigma_window=120.0,
            calib_window=300.0, sigma_source="mid", instruments=None)


def test_instrument_params_fall_back_to_the_base():
    base = SimpleNamespace(**BASE)
    assert instrument_params(base, None, "SPOT") is base  # no overrides: the params as given
    ip = instrument_params(base, dict(tick=0.1, gamma=1e-3), "PERP")
    assert isinstance(ip, InstrumentParams)
    assert (ip.tick, ip.gamma, ip.lot, ip.model) == (0.1, 1e-3, 0.01, "as")
    assert ip.overrides == dict(tick=0.1, gamma=1e-3) and ip.name == "PERP"
    assert ip.as_dict()["eta"] == 0.3 and "instruments" not in ip.as_dict()
    base.lot = 0.02
    assert ip.lot == 0.02  # a live view of the base, not a copy
    with pytest.raises(AttributeError):
        ip.tick = 1.0
    with pytest.raises(AttributeError):
        ip.no_such_param  # noqa: B018
    assert InstrumentParams(BASE, dict(eta=0.0)).eta == 0.0  # a mapping as the base


def test_unknown_instrument_keys_name_them_and_the_feed():
    with pytest.raises(ValueError, match=r"PERP.*\['gama'\]"):
        instrument_params(SimpleNamespace(**BASE), dict(gama=1.0, tick=0.1), "PERP")
    with pytest.raises(ValueError, match="instruments"):
        instrument_params(SimpleNamespace(**BASE), dict(instruments={}), "PERP")


@pytest.mark.parametrize("key,value", [
    ("gamma", 0.0), ("gamma", -1.0), ("gamma", float("nan")), ("kappa", 0.0), ("A", -1.0),
    ("lot", 0.0), ("tick", 0.0), ("size_step", -0.1), ("max_inventory", -1.0), ("eta", -0.1),
    ("horizon", 0.0), ("sigma_window", 0.0), ("calib_window", -5.0), ("gamma", "big"),
    ("model", "gueant"), ("sigma_source", "vwap"), ("lot", True),
])
def test_bad_values_are_rejected_naming_parameter_and_feed(key, value):
    with pytest.raises(ValueError, match=rf"{key} for PERP must be"):
        instrument_params(SimpleNamespace(**BASE), {key: value}, "PERP")
    with pytest.raises(ValueError, match=rf"{key} for SPOT must be"):
        validate_params(SimpleNamespace(**{**BASE, key: value}), "SPOT")


def test_good_values_pass():
    ok = dict(kappa=0.5, A=1.0, sigma=2.0, size_step=None, max_inventory=math.inf,
              horizon=math.inf, eta=0.0, model="glft", sigma_source="trade", gamma=np.float64(1))
    ip = instrument_params(SimpleNamespace(**BASE), ok, "PERP")
    assert ip.model == "glft" and ip.size_step is None


# ----------------------------------------------------------------- bad prices are dropped
def _walk_sigma(zero_at=None, **kw):
    """sigma of a ±1 zig-zag sampled every second, with a zero (or NaN) price at ``zero_at``."""
    est = RollingEstimator(sigma_window=100.0, recalibrate=math.inf, **kw)
    for i in range(40):
        price = 100.0 + (i % 2)
        trade = kw.get("ticks") and price
        if i == zero_at:
            price = trade = 0.0
        if kw.get("ticks"):
            est.update(float(i), 100.0 + (i % 2), trade_price=trade, trade_side=1.0)
        else:
            est.update(float(i), price)
    est.calibrate(39.0)
    return est


def test_a_zero_mid_is_dropped_before_estimation():
    clean, dirty = _walk_sigma(), _walk_sigma(zero_at=20)
    assert clean.sigma == pytest.approx(1.0)
    assert dirty.sigma < 1.2  # the bad mid is not a 100-point jump into sigma
    assert all(m > 0 for _, m in dirty.marks) and len(dirty.marks) == 39
    assert dirty.ema_fast > 99 and dirty.last_mid > 0  # nor into the EMAs
    nan = RollingEstimator()
    nan.update(0.0, float("nan"))
    nan.update(1.0, -5.0)
    assert nan.last_mid is None and not nan.marks and nan.first_t is None


def test_a_zero_price_trade_is_dropped_not_fed_to_sigma_or_intensity():
    est = _walk_sigma(zero_at=20, ticks=True, sigma_source="trade")
    assert est.sigma < 1.2
    assert len(est.trades) == 39 and all(d >= 0 for _, d in est.trades)
    inf = RollingEstimator(ticks=True)
    inf.update(0.0, 100.0, trade_price=float("inf"), trade_side=1.0)
    inf.update(1.0, 100.0, trade_price=-1.0, trade_side=-1.0)
    assert not inf.trades


def test_a_bar_with_a_non_positive_price_is_dropped():
    bars = RollingEstimator(sigma_source="trade", calib_window=1e9)
    bars.update(0.0, 100.0, high=101.0, low=99.0, close=100.0)
    bars.update(1.0, 100.0, high=101.0, low=0.0, close=100.0)      # low of zero
    bars.update(2.0, 100.0, high=101.0, low=99.0, close=0.0)       # close of zero
    bars.update(3.0, 100.0, high=float("nan"), low=99.0, close=100.0)
    bars.update(4.0, 100.0, high=102.0, low=98.0, close=100.0)
    assert list(bars.excursions) == [(4.0, 2.0, 2.0)]
    assert [m for _, m in bars.marks] == [100.0, 100.0]


def test_the_strategy_reads_no_non_positive_mid():
    from s4_strategies.strategies.market_maker import AvellanedaStoikovStrategy as S

    def data(mid, close):
        return SimpleNamespace(lines=SimpleNamespace(mid=[mid]), close=[close])

    book = SimpleNamespace(has_mid=True)
    assert S._mid(data(100.0, 99.0), book) == 100.0
    assert S._mid(data(0.0, 99.0), book) == 99.0  # a zero mid falls back to the close
    assert math.isnan(S._mid(data(0.0, 0.0), book))  # neither: no event
    assert math.isnan(S._mid(data(float("nan"), -1.0), book))


def test_a_bid_that_would_be_non_positive_is_never_placed():
    import backtrader as bt
    import pandas as pd

    import feeds
    from s4_strategies.strategies.market_maker import AvellanedaStoikovStrategy

    idx = pd.date_range("2024-01-01", periods=30, freq="1min", tz="UTC")
    close = 1.0 + 0.01 * (np.arange(30) % 2)
    df = pd.DataFrame(dict(open=close, high=close + 0.01, low=close - 0.01, close=close,
                           volume=1.0), index=idx)

    class Recording(AvellanedaStoikovStrategy):
        def __init__(self):
            super().__init__()
            self.prices = []

        def notify_order(self, order):
            if order.status == order.Submitted:
                self.prices.append((order.isbuy(), order.created.price))
            super().notify_order(order)

    cerebro = bt.Cerebro()
    cerebro.adddata(feeds.ArrayData(dataname=df))
    # a price near 1 with sigma = 1 per √s over 60 s: the AS half-spread is ≈ 30, so the bid
    # would sit near −29
    cerebro.addstrategy(Recording, sigma=1.0, kappa=1.0, gamma=1.0, trend=None, tick=0.01,
                        post_only=False)
    strat = cerebro.run()[0]
    assert strat.prices, "the ask side is still quoted"
    assert all(price > 0 for _, price in strat.prices)
    assert not any(buy for buy, _ in strat.prices)
    assert strat.quotes()["bid"] is None and strat.quotes()["ask"] > 0


@pytest.mark.parametrize("key,value", [
    ("gamma", math.inf), ("lot", math.inf), ("tick", math.inf), ("kappa", math.inf),
    ("eta", math.inf), ("min_spread", float("nan")), ("close_skew", -1.0),
    ("trend_weight", float("nan")), ("trend_weight", "1"), ("trend_cap", -0.5),
    ("inventory_nudge", -0.1), ("requote_threshold", -0.1), ("requote", 0.1),
    ("requote", "fast"), ("model", "constant"), ("half_spread", 0.0), ("skew", -0.1),
    ("min_trades", 0), ("min_bars", 2.5),
    ("min_trades", True), ("post_only", "yes"), ("stamp_at_open", 1),
    ("flatten_at_close", None), ("session_close", "25:99"), ("session_close", 3.5e5),
])
def test_every_strategy_parameter_is_checked(key, value):
    from s4_strategies.strategies.market_maker import AvellanedaStoikovStrategy

    params = dict(AvellanedaStoikovStrategy.params._gettuple())
    with pytest.raises(ValueError, match=rf"{key} for SPOT must be"):
        validate_params(SimpleNamespace(**{**params, key: value}), "SPOT")


def test_strategy_defaults_and_edge_values_pass():
    from s4_strategies.strategies.market_maker import AvellanedaStoikovStrategy

    params = dict(AvellanedaStoikovStrategy.params._gettuple())
    validate_params(SimpleNamespace(**params), "SPOT")
    edge = dict(trend_weight=-1.0, max_inventory=math.inf, horizon=math.inf,
                recalibrate=math.inf, session_close="16:30", close_window=0.0,
                requote_threshold=0.0, requote="aggressive", skew=0.0,
                min_trades=np.int64(5), post_only=np.bool_(False), trend_cap=1e9)
    validate_params(SimpleNamespace(**{**params, **edge}), "SPOT")
    validate_params(SimpleNamespace(**{**params, "model": "linear", "half_spread": 0.5}), "SPOT")
    with pytest.raises(ValueError, match="half_spread for SPOT must be a number > 0 for "
                                         "model='linear'"):
        validate_params(SimpleNamespace(**{**params, "model": "linear"}), "SPOT")
