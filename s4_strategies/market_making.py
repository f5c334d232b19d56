"""Avellaneda–Stoikov market making: the quoting maths as plain functions.

Numbers in, numbers out; no backtrader. ``AvellanedaStoikovStrategy``
(``s4_strategies.strategies.market_maker``) calls these on every bar or tick.

Units (one convention everywhere)
---------------------------------
- prices (``mid``, quotes, ``delta``, ``tick``) in quote currency, e.g. USDT;
- time (``tau``, ``dt``, ``duration``) in **seconds**;
- ``sigma``: price units per √second (the standard deviation of the mid over ``dt``
  seconds is ``sigma·√dt``);
- ``q``: inventory in **lots** (position / lot size), so ``q = 1`` is one quote's worth;
- ``gamma``: risk aversion in 1/(price·lot); ``gamma·sigma²·tau`` is the reservation-price
  shift per lot of inventory;
- ``A``: fills per second at zero distance; ``kappa``: 1/price (the fill intensity at a
  distance ``delta`` from the mid is ``lambda(delta) = A·exp(-kappa·delta)``);
- ``mu`` (drift): price units per second.

Models
------
- Finite horizon (Avellaneda & Stoikov 2008): reservation price
  ``r = mid − q·gamma·sigma²·tau`` and total spread
  ``gamma·sigma²·tau + (2/gamma)·ln(1 + gamma/kappa)``, quotes ``r ∓ spread/2``.
- Infinite horizon (Guéant, Lehalle & Fernandez-Tapia 2013; closed-form approximation of
  Guéant 2017), for 24/7 markets: with ``c1 = (1/gamma)·ln(1 + gamma/kappa)`` and
  ``c2 = sqrt(gamma·sigma²/(2·A·kappa) · (1 + gamma/kappa)^(1 + kappa/gamma))``,
  ``bid = mid − c1 − (q + 1/2)·c2`` and ``ask = mid + c1 − (q − 1/2)·c2``; no bid at
  ``q ≥ Q``, no ask at ``q ≤ −Q``.
- Drift (the GLFT extension): a drift ``mu`` enters both models as an inventory shift,
  ``q → q − mu/(gamma·sigma²)``; for AS this is ``r = mid + mu·tau − q·gamma·sigma²·tau``.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "as_quotes",
    "as_quotes_rounded",
    "calibrate_from_bars",
    "calibrate_from_excursions",
    "calibrate_from_trades",
    "drift_shift",
    "ema_lag",
    "ema_trend",
    "ema_update",
    "fill_probability",
    "fit_intensity",
    "glft_coefficients",
    "glft_quotes",
    "glft_quotes_rounded",
    "intensity",
    "intensity_from_touches",
    "intensity_from_trades",
    "optimal_spread",
    "quote_sizes",
    "realized_sigma",
    "reservation_price",
    "parse_session_close",
    "round_quotes",
    "session_tau",
    "time_to_close",
]

_EPS = 1e-9


# --------------------------------------------------------------------------- quotes
def drift_shift(mu: float, gamma: float, sigma: float) -> float:
    """The drift as inventory, ``mu/(gamma·sigma²)`` lots (GLFT extension).

    Quoting with ``q − drift_shift(mu, gamma, sigma)`` leans both quotes toward the trend.
    """
    if mu == 0.0:
        return 0.0
    return mu / (gamma * sigma * sigma)


def reservation_price(mid: float, q: float, gamma: float, sigma: float, tau: float,
                      drift: float = 0.0) -> float:
    """``r = mid − q·gamma·sigma²·tau`` (plus ``drift·tau`` when a drift is given)."""
    return mid + drift * tau - q * gamma * sigma * sigma * tau


def optimal_spread(gamma: float, sigma: float, tau: float, kappa: float) -> float:
    """Total AS spread ``gamma·sigma²·tau + (2/gamma)·ln(1 + gamma/kappa)``."""
    return gamma * sigma * sigma * tau + (2.0 / gamma) * math.log1p(gamma / kappa)


def as_quotes(mid: float, q: float, gamma: float, sigma: float, tau: float, kappa: float,
              drift: float = 0.0) -> tuple[float, float]:
    """AS quotes ``(bid, ask) = r ∓ spread/2`` (unrounded)."""
    r = reservation_price(mid, q, gamma, sigma, tau, drift)
    half = 0.5 * optimal_spread(gamma, sigma, tau, kappa)
    return r - half, r + half


def _decimals(tick: float) -> int:
    text = f"{tick:.12f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


def round_quotes(bid: float, ask: float, tick: float, min_spread: float = 0.0
                 ) -> tuple[float, float]:
    """Put ``(bid, ask)`` on the tick grid without narrowing them and never crossing.

    The pair is first widened symmetrically to ``min_spread``; then the bid is rounded down
    and the ask up to the tick, and the ask is pushed to at least one tick above the bid.
    """
    if not tick > 0:
        raise ValueError("tick must be positive")
    if ask - bid < min_spread:
        centre = 0.5 * (bid + ask)
        bid, ask = centre - 0.5 * min_spread, centre + 0.5 * min_spread
    nd = _decimals(tick)
    xb, xa = bid / tick, ask / tick
    # a relative tolerance: p/tick carries float noise that grows with the ratio
    b = math.floor(xb + _EPS * max(1.0, abs(xb)))
    a = math.ceil(xa - _EPS * max(1.0, abs(xa)))
    need = max(1, math.ceil(min_spread / tick - _EPS))
    if a - b < need:
        a = b + need
    return round(b * tick, nd), round(a * tick, nd)


def as_quotes_rounded(mid: float, q: float, gamma: float, sigma: float, tau: float,
                      kappa: float, tick: float, min_spread: float = 0.0,
                      drift: float = 0.0) -> tuple[float, float]:
    """:func:`as_quotes` on the tick grid with a minimum spread (bid < ask always)."""
    bid, ask = as_quotes(mid, q, gamma, sigma, tau, kappa, drift)
    return round_quotes(bid, ask, tick, min_spread)


def glft_coefficients(gamma: float, sigma: float, A: float, kappa: float
                      ) -> tuple[float, float]:
    """``(c1, c2)`` of the GLFT approximation: half-spread base and skew per lot.

    ``c1 = (1/gamma)·ln(1 + gamma/kappa)``;
    ``c2 = sqrt(gamma·sigma²/(2·A·kappa) · (1 + gamma/kappa)^(1 + kappa/gamma))``.
    """
    ratio = gamma / kappa
    c1 = math.log1p(ratio) / gamma
    # (1 + g/k)^(1 + k/g) computed in logs: it overflows for tiny gamma otherwise
    log_pow = (1.0 + 1.0 / ratio) * math.log1p(ratio)
    c2 = math.sqrt(gamma * sigma * sigma / (2.0 * A * kappa) * math.exp(log_pow))
    return c1, c2


def glft_quotes(mid: float, q: float, gamma: float, sigma: float, A: float, kappa: float,
                drift: float = 0.0, max_inventory: float | None = None
                ) -> tuple[float | None, float | None]:
    """Infinite-horizon quotes: ``bid = mid − c1 − (q' + ½)c2``, ``ask = mid + c1 − (q' − ½)c2``.

    ``q' = q − drift/(gamma·sigma²)``. With ``max_inventory = Q``: ``bid`` is ``None`` when
    ``q ≥ Q`` and ``ask`` is ``None`` when ``q ≤ −Q`` (the limits use the true ``q``).
    """
    c1, c2 = glft_coefficients(gamma, sigma, A, kappa)
    qe = q - drift_shift(drift, gamma, sigma)
    bid: float | None = mid - c1 - (qe + 0.5) * c2
    ask: float | None = mid + c1 - (qe - 0.5) * c2
    if max_inventory is not None:
        if q >= max_inventory - _EPS:
            bid = None
        if q <= -max_inventory + _EPS:
            ask = None
    return bid, ask


def glft_quotes_rounded(mid: float, q: float, gamma: float, sigma: float, A: float,
                        kappa: float, tick: float, min_spread: float = 0.0,
                        drift: float = 0.0, max_inventory: float | None = None
                        ) -> tuple[float | None, float | None]:
    """:func:`glft_quotes` on the tick grid with a minimum spread (bid < ask always)."""
    bid, ask = glft_quotes(mid, q, gamma, sigma, A, kappa, drift, None)
    bid, ask = round_quotes(bid, ask, tick, min_spread)
    if max_inventory is not None:
        if q >= max_inventory - _EPS:
            bid = None
        if q <= -max_inventory + _EPS:
            ask = None
    return bid, ask


# --------------------------------------------------------------------------- sizes
def quote_sizes(position: float, lot: float, eta: float = 0.0,
                max_inventory: float = math.inf, step: float | None = None
                ) -> tuple[float, float]:
    """Order sizes ``(bid_size, ask_size)`` in contracts for a ``position`` in contracts.

    The side that would grow inventory shrinks as ``lot·exp(−eta·|q|)`` with
    ``q = position/lot``; the other side keeps ``lot``. Both are capped so that a full fill
    never takes ``|position|`` past ``max_inventory`` lots, and rounded down to ``step``.
    """
    q = position / lot
    bid = lot * math.exp(-eta * max(q, 0.0))
    ask = lot * math.exp(-eta * max(-q, 0.0))
    limit = max_inventory * lot
    bid = min(bid, max(limit - position, 0.0))
    ask = min(ask, max(limit + position, 0.0))
    if step:
        nd = _decimals(step)
        bid = round(math.floor(bid / step + _EPS) * step, nd)
        ask = round(math.floor(ask / step + _EPS) * step, nd)
    return bid, ask


# --------------------------------------------------------------------------- fills
def intensity(delta, A: float, kappa: float):
    """Fill intensity ``lambda(delta) = A·exp(−kappa·delta)`` (fills per second)."""
    if np.ndim(delta):
        return A * np.exp(-kappa * np.asarray(delta, dtype=float))
    return A * math.exp(-kappa * float(delta))


def fill_probability(delta: float, A: float, kappa: float, dt: float) -> float:
    """``P(fill within dt) = 1 − exp(−A·exp(−kappa·delta)·dt)`` (Poisson arrivals)."""
    return -math.expm1(-A * math.exp(-kappa * max(delta, 0.0)) * dt)


# --------------------------------------------------------------------------- estimation
def realized_sigma(times: Sequence[float], prices: Sequence[float]) -> float:
    """Volatility per √second from irregular samples: ``sqrt(Σ(Δp)² / Σ Δt)``."""
    t = np.asarray(times, dtype=float)
    p = np.asarray(prices, dtype=float)
    if len(t) < 2:
        return float("nan")
    span = t[-1] - t[0]
    if not span > 0:
        return float("nan")
    return float(np.sqrt(np.sum(np.diff(p) ** 2) / span))


def fit_intensity(deltas, rates) -> tuple[float, float]:
    """Least-squares fit of ``log rate = log A − kappa·delta``; returns ``(A, kappa)``.

    Points with a non-positive rate are dropped; at least two must remain.
    """
    d = np.asarray(deltas, dtype=float)
    r = np.asarray(rates, dtype=float)
    ok = np.isfinite(d) & np.isfinite(r) & (r > 0)
    d, r = d[ok], r[ok]
    if len(d) < 2 or np.ptp(d) <= 0:
        raise ValueError("need at least two distinct depths with a positive rate")
    slope, intercept = np.polyfit(d, np.log(r), 1)
    return float(math.exp(intercept)), float(-slope)


def _grid(values: np.ndarray, n: int, lo_q: float = 0.05, hi_q: float = 0.9) -> np.ndarray:
    lo, hi = np.quantile(values, [lo_q, hi_q])
    return np.linspace(lo, hi, n) if hi > lo else np.array([lo])


def intensity_from_trades(distances, duration: float, deltas) -> np.ndarray:
    """Empirical ``lambda(delta)``: trades per second that printed at least ``delta`` from the mid.

    ``distances`` are aggressor-side distances ``side·(price − mid)`` (a buy at ``mid + d``
    would have lifted an ask quoted ``d`` above the mid); negative ones count as 0.
    """
    d = np.sort(np.maximum(np.asarray(distances, dtype=float), 0.0))
    counts = len(d) - np.searchsorted(d, np.asarray(deltas, dtype=float), side="left")
    return counts / float(duration)


def intensity_from_touches(excursions, bar_seconds: float, deltas) -> np.ndarray:
    """``lambda(delta)`` from bars: ``−ln(1 − P(excursion ≥ delta)) / bar_seconds``.

    ``excursions`` are ``high − open`` and ``open − low`` of each bar (how far the market went
    from the price a quote was set at). A bar that reaches ``delta`` is one Poisson arrival
    at least; the touch frequency is inverted through ``P = 1 − exp(−lambda·dt)``.
    """
    e = np.sort(np.asarray(excursions, dtype=float))
    n = len(e)
    p = (n - np.searchsorted(e, np.asarray(deltas, dtype=float), side="left")) / n
    p = np.minimum(p, 1.0 - 0.5 / n)  # a level touched by every bar has a finite rate
    return -np.log1p(-p) / float(bar_seconds)


def calibrate_from_trades(distances, duration: float, n_grid: int = 20,
                          min_delta: float | None = None, q_hi: float = 0.99
                          ) -> tuple[float, float]:
    """``(A, kappa)`` from aggressor-side trade distances to the mid over ``duration`` seconds.

    The fit runs over depths from ``min_delta`` to the ``q_hi`` quantile of the distances.
    ``min_delta`` defaults to twice the median distance: in a liquid book most trades print
    at the touch (half the spread from the mid) and the exponential tail that matters for
    quotes away from the touch starts one level beyond it.
    """
    d = np.maximum(np.asarray(distances, dtype=float), 0.0)
    d = d[np.isfinite(d)]
    if len(d) < 10:
        raise ValueError("too few trades to calibrate")
    lo = 2.0 * float(np.median(d)) if min_delta is None else float(min_delta)
    hi = float(np.quantile(d, q_hi))
    if not hi > lo:
        lo, hi = 0.0, float(np.max(d))
    grid = np.linspace(lo, hi, n_grid)
    return fit_intensity(grid, intensity_from_trades(d, duration, grid))


def calibrate_from_excursions(excursions, bar_seconds: float, n_grid: int = 20
                              ) -> tuple[float, float]:
    """``(A, kappa)`` from bar excursions (``high − mid`` and ``mid − low``, ``mid`` the
    price quotes were set at, e.g. the previous close), via :func:`intensity_from_touches`."""
    e = np.asarray(excursions, dtype=float)
    e = e[np.isfinite(e)]
    if len(e) < 10:
        raise ValueError("too few bars to calibrate")
    grid = _grid(e, n_grid, 0.05, 0.9)
    return fit_intensity(grid, intensity_from_touches(e, bar_seconds, grid))


def calibrate_from_bars(open_, high, low, bar_seconds: float, n_grid: int = 20
                        ) -> tuple[float, float]:
    """``(A, kappa)`` from bars: excursions ``high − open`` and ``open − low``, both sides pooled."""
    o, h, lo = (np.asarray(x, dtype=float) for x in (open_, high, low))
    return calibrate_from_excursions(np.concatenate([h - o, o - lo]), bar_seconds, n_grid)


# --------------------------------------------------------------------------- trend
def ema_update(prev: float | None, x: float, dt: float, tc: float) -> float:
    """One step of a time-aware EMA with time constant ``tc`` seconds: ``alpha = 1 − e^(−dt/tc)``."""
    if prev is None or not math.isfinite(prev):
        return x
    alpha = -math.expm1(-dt / tc)
    return prev + alpha * (x - prev)


def ema_lag(tc: float, dt: float) -> float:
    """Steady-state lag (seconds) of :func:`ema_update` on a ramp sampled every ``dt`` seconds.

    ``dt·(1 − alpha)/alpha``; tends to ``tc`` as ``dt → 0``.
    """
    alpha = -math.expm1(-dt / tc)
    return dt * (1.0 - alpha) / alpha


def ema_trend(fast: float, slow: float, lag_fast: float, lag_slow: float) -> float:
    """Drift (price per second) from two EMAs: on a ramp ``ema = p − mu·lag``, so
    ``mu = (fast − slow)/(lag_slow − lag_fast)``."""
    return (fast - slow) / (lag_slow - lag_fast)


# --------------------------------------------------------------------------- sessions
def parse_session_close(value) -> float | None:
    """A daily close as seconds after UTC midnight, from ``"HH:MM[:SS]"``, a
    ``datetime.time`` or a number of seconds; ``None`` stays ``None`` (no session)."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) % 86_400.0
    if isinstance(value, str):
        value = _dt.time(*(int(x) for x in value.split(":")))
    if isinstance(value, _dt.time):
        return value.hour * 3600.0 + value.minute * 60.0 + value.second
    raise ValueError(f"session close must be 'HH:MM', a datetime.time or seconds, not {value!r}")


def time_to_close(now: float, close: float | None) -> float:
    """Seconds from ``now`` (epoch seconds, UTC) to the next daily ``close`` (seconds after
    UTC midnight); ``inf`` without a session. At the close instant 0, just after it a day."""
    if close is None:
        return math.inf
    return float((close - now) % 86_400.0)


def session_tau(now: float, close: float | None, horizon: float) -> float:
    """AS ``tau``: ``min(horizon, time to the close)``. ``close=None`` gives the rolling
    horizon of 24/7 markets; ``horizon=inf`` the classic time-to-close of a daily session."""
    return min(float(horizon), time_to_close(now, close))
