"""Avellaneda–Stoikov / GLFT quoting maths against hand-computed closed forms and properties."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from s4_strategies import market_making as mm
from s4_strategies.market_making.quotes import positive_quotes

E = math.e


# ----------------------------------------------------------------- closed forms by hand
def test_reservation_price_by_hand():
    # r = 100 − q·γ·σ²·τ = 100 − 2·0.1·4·0.5 = 99.6
    assert mm.reservation_price(100.0, 2.0, 0.1, 2.0, 0.5) == pytest.approx(99.6, abs=1e-12)
    # with a drift: r = 100 + μτ − qγσ²τ = 100 + 0.3·0.5 − 0.4 = 99.75
    assert mm.reservation_price(100.0, 2.0, 0.1, 2.0, 0.5, drift=0.3) == pytest.approx(99.75)


def test_optimal_spread_and_quotes_by_hand():
    # γ = 1, κ = 1/(e − 1): (2/γ)·ln(1 + γ/κ) = 2·ln(e) = 2
    kappa = 1.0 / (E - 1.0)
    # γσ²τ = 1·0.25·2 = 0.5  →  spread = 2.5
    assert mm.optimal_spread(1.0, 0.5, 2.0, kappa) == pytest.approx(2.5, abs=1e-12)
    # q = 1: r = 100 − 0.5 = 99.5, quotes 99.5 ∓ 1.25
    bid, ask = mm.as_quotes(100.0, 1.0, 1.0, 0.5, 2.0, kappa)
    assert bid == pytest.approx(98.25, abs=1e-12)
    assert ask == pytest.approx(100.75, abs=1e-12)
    # (2/0.1)·ln(1 + 0.1/1.5) = 20·ln(16/15) = 1.2907704227514236; + 0.1·4·0.5 = 0.2
    assert mm.optimal_spread(0.1, 2.0, 0.5, 1.5) == pytest.approx(1.4907704227514236, rel=1e-12)


def test_spread_tends_to_two_over_kappa_for_small_gamma():
    assert mm.optimal_spread(1e-9, 1.0, 1.0, 4.0) == pytest.approx(0.5, rel=1e-6)


def test_glft_by_hand():
    # γ = κ = 1: c1 = ln 2; (1 + 1)^(1 + 1) = 4, c2 = sqrt(γσ²/(2Aκ)·4) = σ·sqrt(2/A) = σ for A = 2
    c1, c2 = mm.glft_coefficients(1.0, 0.3, 2.0, 1.0)
    assert c1 == pytest.approx(math.log(2.0), abs=1e-12)
    assert c2 == pytest.approx(0.3, abs=1e-12)
    bid, ask = mm.glft_quotes(100.0, 1.0, 1.0, 0.3, 2.0, 1.0)
    assert bid == pytest.approx(100 - math.log(2) - 1.5 * 0.3, abs=1e-12)   # 98.856853
    assert ask == pytest.approx(100 + math.log(2) - 0.5 * 0.3, abs=1e-12)   # 100.543147
    # drift μ = γσ² = 0.09 is one lot of inventory: at q = 1 the quotes are symmetric
    bid, ask = mm.glft_quotes(100.0, 1.0, 1.0, 0.3, 2.0, 1.0, drift=0.09)
    assert bid == pytest.approx(100 - math.log(2) - 0.15, abs=1e-12)
    assert ask == pytest.approx(100 + math.log(2) + 0.15, abs=1e-12)
    assert mm.drift_shift(0.09, 1.0, 0.3) == pytest.approx(1.0)


def test_glft_inventory_limit():
    assert mm.glft_quotes(100, 3.0, 1.0, 0.3, 2.0, 1.0, max_inventory=3)[0] is None
    assert mm.glft_quotes(100, 3.0, 1.0, 0.3, 2.0, 1.0, max_inventory=3)[1] is not None
    assert mm.glft_quotes(100, -3.0, 1.0, 0.3, 2.0, 1.0, max_inventory=3)[1] is None
    b, a = mm.glft_quotes_rounded(100, -3.0, 1.0, 0.3, 2.0, 1.0, 0.01, max_inventory=3)
    assert a is None and b == pytest.approx(math.floor((100 - math.log(2) + 2.5 * 0.3) * 100) / 100)


def test_glft_small_gamma_does_not_overflow():
    c1, c2 = mm.glft_coefficients(1e-6, 3.0, 0.6, 0.4)
    assert math.isfinite(c1) and math.isfinite(c2)
    assert c1 == pytest.approx(1 / 0.4, rel=1e-5)


def test_round_quotes_by_hand():
    assert mm.round_quotes(99.996, 100.004, 0.01) == (99.99, 100.01)
    # widened to 0.05 around 100.0005, then floor/ceil to the tick
    assert mm.round_quotes(100.0, 100.001, 0.01, min_spread=0.05) == (99.97, 100.03)
    # a zero-width pair never crosses
    assert mm.round_quotes(100.0, 100.0, 0.01) == (100.0, 100.01)
    assert mm.round_quotes(61837.63, 61837.63, 0.01) == (61837.63, 61837.64)
    b, a = mm.as_quotes_rounded(100.0, 1.0, 1.0, 0.5, 2.0, 1.0 / (E - 1.0), tick=0.1)
    assert (b, a) == (98.2, 100.8)


def test_quote_sizes_by_hand():
    # q = 2 lots, η = 0.5: bid = 0.01·e^(−1) = 0.0036788 → 0.0036 on a 0.0001 step
    assert mm.quote_sizes(0.02, 0.01, eta=0.5, step=0.0001) == (0.0036, 0.01)
    # a hard limit of 2.2 lots leaves room for 0.002 on the bid
    assert mm.quote_sizes(0.02, 0.01, eta=0.5, max_inventory=2.2, step=0.0001) == (0.002, 0.01)
    assert mm.quote_sizes(-0.05, 0.01, eta=0.0, max_inventory=5, step=0.001) == (0.01, 0.0)


def test_fill_probability_and_intensity_by_hand():
    # λ(1) = 2·e^(−ln 2) = 1 per second; P(fill in 1 s) = 1 − e^(−1)
    assert mm.intensity(1.0, 2.0, math.log(2)) == pytest.approx(1.0)
    assert mm.fill_probability(1.0, 2.0, math.log(2), 1.0) == pytest.approx(1 - math.exp(-1))
    np.testing.assert_allclose(mm.intensity([0.0, 1.0], 2.0, math.log(2)), [2.0, 1.0])


def test_realized_sigma_by_hand():
    # Σ(Δp)² = 1 + 4 + 0 = 5 over 4 s → sqrt(5/4)
    assert mm.realized_sigma([0, 1, 3, 4], [10, 11, 9, 9]) == pytest.approx(math.sqrt(1.25))
    assert math.isnan(mm.realized_sigma([0], [1]))


def test_intensity_estimators_by_hand():
    # clipped distances [0, 0, .5, 1, 1, 2] over 2 s: ≥0: 6, ≥1: 3, ≥2: 1 trades
    rates = mm.intensity_from_trades([0, 0.5, 1, 1, 2, -1], 2.0, [0, 1, 2])
    np.testing.assert_allclose(rates, [3.0, 1.5, 0.5])
    # half of the bars reach 2.5: λ = −ln(0.5)/10
    lam = mm.intensity_from_touches([1, 2, 3, 4], 10.0, [2.5])
    assert lam[0] == pytest.approx(math.log(2) / 10)


def test_fit_intensity_recovers_exact_exponential():
    d = np.array([0.0, 1.0, 2.0, 3.0])
    A, kappa = mm.fit_intensity(d, 5.0 * np.exp(-0.7 * d))
    assert A == pytest.approx(5.0, rel=1e-10)
    assert kappa == pytest.approx(0.7, rel=1e-10)
    with pytest.raises(ValueError):
        mm.fit_intensity([1.0], [1.0])


def test_calibrate_from_trades_recovers_exponential_sample():
    n, kappa, duration = 20_000, 0.5, 1_000.0
    u = (np.arange(n) + 0.5) / n
    d = -np.log1p(-u) / kappa  # exact quantiles of Exp(kappa)
    A, k = mm.calibrate_from_trades(d, duration, min_delta=0.0, q_hi=0.95)
    assert k == pytest.approx(kappa, rel=0.02)
    assert A == pytest.approx(n / duration, rel=0.02)


def test_calibrate_from_bars_is_positive_and_ordered():
    rng = np.random.default_rng(0)
    o = np.full(500, 100.0)
    h = o + rng.exponential(2.0, 500)
    lo = o - rng.exponential(2.0, 500)
    A, kappa = mm.calibrate_from_bars(o, h, lo, 3600.0)
    assert A > 0 and kappa > 0
    lam = mm.intensity([1.0, 3.0], A, kappa)
    assert lam[0] > lam[1]


def test_ema_trend_is_exact_on_a_ramp():
    mu, dt, fast, slow = 0.25, 2.0, 10.0, 40.0
    ef = es = None
    for i in range(2_000):
        x = 100.0 + mu * i * dt
        ef = mm.ema_update(ef, x, dt, fast)
        es = mm.ema_update(es, x, dt, slow)
    est = mm.ema_trend(ef, es, mm.ema_lag(fast, dt), mm.ema_lag(slow, dt))
    assert est == pytest.approx(mu, rel=1e-9)
    assert mm.ema_lag(10.0, 1e-6) == pytest.approx(10.0, rel=1e-6)


def test_session_clock():
    midnight = 1_723_161_600.0  # 2024-08-09 00:00 UTC
    close = mm.parse_session_close("00:00")
    assert close == 0.0
    assert mm.time_to_close(midnight - 60, close) == pytest.approx(60.0)
    assert mm.time_to_close(midnight, close) == 0.0
    assert mm.time_to_close(midnight + 1, close) == pytest.approx(86_399.0)
    assert mm.session_tau(midnight - 60, close, 30.0) == 30.0
    assert mm.session_tau(midnight - 60, close, math.inf) == pytest.approx(60.0)
    assert mm.session_tau(midnight - 60, None, 30.0) == 30.0
    assert mm.parse_session_close("16:30") == 16.5 * 3600
    with pytest.raises(ValueError):
        mm.parse_session_close([1])


# ----------------------------------------------------------------- properties
pos = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False)
prices = st.floats(min_value=1.0, max_value=1e5, allow_nan=False)
inventory = st.floats(min_value=-20, max_value=20, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(mid=prices, q=inventory, gamma=st.floats(1e-5, 10), sigma=st.floats(1e-4, 50),
       tau=st.floats(1e-3, 1e4), kappa=st.floats(1e-3, 100),
       tick=st.sampled_from([0.0001, 0.01, 0.1, 0.5, 1.0]),
       min_spread=st.floats(0, 5))
def test_rounded_as_quotes_never_cross(mid, q, gamma, sigma, tau, kappa, tick, min_spread):
    bid, ask = mm.as_quotes_rounded(mid, q, gamma, sigma, tau, kappa, tick, min_spread)
    if bid is None or ask is None:
        return  # a side that would be <= 0 is not quoted (test_rounded_quotes_are_never_...)
    assert bid < ask
    assert ask - bid >= min_spread - 1e-9 * max(1.0, abs(mid))
    raw_bid, raw_ask = mm.as_quotes(mid, q, gamma, sigma, tau, kappa)
    if ask - bid > min_spread + 2 * tick:  # the minimum did not bind: rounding only widens
        assert bid <= raw_bid + 1e-9 * abs(raw_bid) and ask >= raw_ask - 1e-9 * abs(raw_ask)


@settings(max_examples=200, deadline=None)
@given(mid=prices, q1=inventory, dq=st.floats(1e-3, 10), gamma=st.floats(1e-4, 10),
       sigma=st.floats(1e-2, 50), tau=st.floats(1e-2, 1e3))
def test_reservation_price_falls_as_inventory_rises(mid, q1, dq, gamma, sigma, tau):
    assume(dq * gamma * sigma**2 * tau > 1e-9 * mid)  # a change that floats can represent
    assert mm.reservation_price(mid, q1 + dq, gamma, sigma, tau) < \
        mm.reservation_price(mid, q1, gamma, sigma, tau)


@settings(max_examples=200, deadline=None)
@given(mid=prices, gamma=st.floats(1e-4, 10), sigma=st.floats(1e-2, 50),
       kappa=st.floats(1e-3, 100), t1=st.floats(1e-3, 1e3), frac=st.floats(0.0, 0.999))
def test_spread_narrows_toward_the_session_end_at_zero_inventory(mid, gamma, sigma, kappa, t1,
                                                                frac):
    t0 = t1 * frac  # later in the session: less time left
    assume(gamma * sigma**2 * (t1 - t0) > 1e-9 * mid)  # a change that floats can represent
    assert mm.optimal_spread(gamma, sigma, t0, kappa) < mm.optimal_spread(gamma, sigma, t1, kappa)
    b0, a0 = mm.as_quotes(mid, 0.0, gamma, sigma, t0, kappa)
    b1, a1 = mm.as_quotes(mid, 0.0, gamma, sigma, t1, kappa)
    assert a0 - b0 < a1 - b1
    assert (a0 + b0) / 2 == pytest.approx(mid) and (a1 + b1) / 2 == pytest.approx(mid)


@settings(max_examples=200, deadline=None)
@given(mid=prices, q=inventory, gamma=st.floats(1e-4, 10), sigma=st.floats(1e-2, 50),
       A=st.floats(1e-3, 100), kappa=st.floats(1e-2, 100),
       tick=st.sampled_from([0.01, 0.1, 1.0]), Q=st.floats(1, 20))
def test_glft_quotes_never_cross_and_respect_limits(mid, q, gamma, sigma, A, kappa, tick, Q):
    bid, ask = mm.glft_quotes_rounded(mid, q, gamma, sigma, A, kappa, tick, max_inventory=Q)
    if bid is not None and ask is not None:
        assert bid < ask
    free_bid, free_ask = mm.glft_quotes_rounded(mid, q, gamma, sigma, A, kappa, tick)
    assert (bid is None) == (q >= Q - 1e-9 or free_bid is None)  # None: the limit or <= 0
    assert (ask is None) == (q <= -Q + 1e-9 or free_ask is None)
    b_hi, _ = mm.glft_quotes(mid, q + 1.0, gamma, sigma, A, kappa)
    b_lo, _ = mm.glft_quotes(mid, q, gamma, sigma, A, kappa)
    assert b_hi < b_lo


@settings(max_examples=200, deadline=None)
@given(q=st.floats(-5, 5), lot=st.sampled_from([0.001, 0.01, 1.0]), eta=st.floats(0, 3),
       Q=st.floats(0.5, 5), step=st.sampled_from([None, 0.0001, 0.001]))
def test_quote_sizes_respect_hard_limits(q, lot, eta, Q, step):
    position = max(-Q, min(Q, q)) * lot
    b, a = mm.quote_sizes(position, lot, eta, Q, step)
    assert 0 <= b <= lot + 1e-12 and 0 <= a <= lot + 1e-12
    assert position + b <= Q * lot + 1e-9
    assert position - a >= -Q * lot - 1e-9
    b2, _ = mm.quote_sizes(position + 0.5 * lot, lot, eta, math.inf, None)
    b1, _ = mm.quote_sizes(position, lot, eta, math.inf, None)
    assert b2 <= b1 + 1e-15


@settings(max_examples=200, deadline=None)
@given(d1=st.floats(0, 100), dd=st.floats(1e-3, 100), A=st.floats(1e-4, 100),
       kappa=st.floats(1e-3, 10), dt=st.floats(1e-3, 1e4))
def test_fill_probability_is_a_probability_falling_with_distance(d1, dd, A, kappa, dt):
    p1 = mm.fill_probability(d1, A, kappa, dt)
    p2 = mm.fill_probability(d1 + dd, A, kappa, dt)
    assert 0.0 <= p2 <= p1 <= 1.0


@settings(max_examples=200, deadline=None)
@given(bid=st.floats(1.0, 2e5), width=st.floats(0.0, 50.0),
       tick=st.sampled_from([0.0001, 0.01, 0.1, 0.25, 0.5, 1.0]))
def test_round_quotes_land_on_the_tick_grid(bid, width, tick):
    b, a = mm.round_quotes(bid, bid + width, tick)
    assert b < a
    for x in (b, a):
        assert abs(x / tick - round(x / tick)) < 1e-6
    assert b <= bid + 1e-9 * bid and a >= bid + width - 1e-9 * bid


# ----------------------------------------------------------------- bad inputs, positive quotes
NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("call,name", [
    (lambda x: mm.reservation_price(100.0, 1.0, x, 1.0, 1.0), "gamma"),
    (lambda x: mm.reservation_price(100.0, 1.0, 0.1, x, 1.0), "sigma"),
    (lambda x: mm.optimal_spread(x, 1.0, 1.0, 1.0), "gamma"),
    (lambda x: mm.optimal_spread(0.1, 1.0, 1.0, x), "kappa"),
    (lambda x: mm.as_quotes(100.0, 0.0, 0.1, x, 1.0, 1.0), "sigma"),
    (lambda x: mm.as_quotes(100.0, 0.0, 0.1, 1.0, 1.0, x), "kappa"),
    (lambda x: mm.as_quotes(x, 0.0, 0.1, 1.0, 1.0, 1.0), "mid"),
    (lambda x: mm.as_quotes_rounded(100.0, 0.0, 0.1, 1.0, 1.0, 1.0, x), "tick"),
    (lambda x: mm.glft_coefficients(x, 1.0, 1.0, 1.0), "gamma"),
    (lambda x: mm.glft_coefficients(0.1, x, 1.0, 1.0), "sigma"),
    (lambda x: mm.glft_coefficients(0.1, 1.0, x, 1.0), "A"),
    (lambda x: mm.glft_coefficients(0.1, 1.0, 1.0, x), "kappa"),
    (lambda x: mm.glft_quotes(x, 0.0, 0.1, 1.0, 1.0, 1.0), "mid"),
    (lambda x: mm.glft_quotes_rounded(100.0, 0.0, 0.1, 1.0, 1.0, 1.0, x), "tick"),
    (lambda x: mm.drift_shift(0.5, x, 1.0), "gamma"),
    (lambda x: mm.drift_shift(0.5, 0.1, x), "sigma"),
    (lambda x: mm.round_quotes(99.0, 101.0, x), "tick"),
    (lambda x: mm.quote_sizes(0.0, x), "lot"),
    (lambda x: mm.intensity(1.0, x, 1.0), "A"),
    (lambda x: mm.intensity(1.0, 1.0, x), "kappa"),
    (lambda x: mm.fill_probability(1.0, x, 1.0, 1.0), "A"),
    (lambda x: mm.fill_probability(1.0, 1.0, x, 1.0), "kappa"),
])
@pytest.mark.parametrize("bad", [0.0, -1.0, NAN, INF])
def test_quote_functions_reject_non_positive_parameters_naming_them(call, name, bad):
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        call(bad)


def test_negative_time_and_sizes_are_rejected():
    with pytest.raises(ValueError, match="tau"):
        mm.optimal_spread(0.1, 1.0, -1.0, 1.0)
    with pytest.raises(ValueError, match="tau"):
        mm.reservation_price(100.0, 0.0, 0.1, 1.0, NAN)
    with pytest.raises(ValueError, match="eta"):
        mm.quote_sizes(0.0, 0.01, eta=-0.1)
    with pytest.raises(ValueError, match="max_inventory"):
        mm.quote_sizes(0.0, 0.01, max_inventory=-1.0)
    with pytest.raises(ValueError, match="dt"):
        mm.fill_probability(1.0, 1.0, 1.0, -1.0)


def test_a_quote_that_would_be_non_positive_is_not_made():
    # q = 50 lots, γσ²τ = 1 per lot: r = 10 − 50 = −40, bid and ask both below zero
    assert mm.as_quotes_rounded(10.0, 50.0, 1.0, 1.0, 1.0, 1.0, tick=0.01) == (None, None)
    # r = 10 − 10 = 0, half-spread (1 + 2·ln 2)/2 ≈ 1.193: the bid would be −1.19 (dropped),
    # the ask 1.193 rounds up to 1.2 and stays
    bid, ask = mm.as_quotes_rounded(10.0, 10.0, 1.0, 1.0, 1.0, 1.0, tick=0.01)
    assert bid is None and ask == pytest.approx(1.2)
    b, a = mm.glft_quotes_rounded(1.0, 100.0, 1.0, 0.3, 2.0, 1.0, 0.01)
    assert b is None and a is None
    assert positive_quotes(0.0, 0.01) == (None, 0.01)
    assert positive_quotes(-1.0, -0.5) == (None, None)
    assert positive_quotes(None, 3.0) == (None, 3.0)
    assert positive_quotes(1.0, 2.0) == (1.0, 2.0)


@settings(max_examples=200, deadline=None)
@given(mid=prices, q=st.floats(-1e3, 1e3), gamma=st.floats(1e-5, 10), sigma=st.floats(1e-4, 50),
       tau=st.floats(1e-3, 1e4), kappa=st.floats(1e-3, 100), A=st.floats(1e-3, 100),
       tick=st.sampled_from([0.0001, 0.01, 1.0]))
def test_rounded_quotes_are_never_non_positive(mid, q, gamma, sigma, tau, kappa, A, tick):
    for bid, ask in (mm.as_quotes_rounded(mid, q, gamma, sigma, tau, kappa, tick),
                     mm.glft_quotes_rounded(mid, q, gamma, sigma, A, kappa, tick)):
        assert bid is None or bid > 0
        assert ask is None or ask > 0
        if bid is not None and ask is not None:
            assert bid < ask
