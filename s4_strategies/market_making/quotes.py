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

Bad inputs and non-positive quotes
----------------------------------
``gamma, sigma, kappa, A, tick, lot`` and ``mid`` must be finite and > 0, ``tau, dt, eta,
max_inventory`` >= 0: anything else raises ``ValueError`` naming the parameter (one
comparison each, cheap enough for every tick). A quote on the tick grid that would be
<= 0 is not made: the ``*_rounded`` functions return ``None`` for that side
(:func:`positive_quotes`), as for a side closed by the inventory limit. A bid <= 0 means the
model would pay nothing for more inventory, i.e. it wants none; an ask <= 0 means the
inventory is far beyond what the parameters can price. A price of zero or less is no price
on any venue, and raising it to one tick would place an order the model did not ask for
(and, for an ask, sell at any price); the inventory limit (``max_inventory``) and the
flatten at the close are the tools for such positions.
"""

from __future__ import annotations

import math

import numpy as np

_EPS = 1e-9


def _positive(name: str, value) -> None:
    """``ValueError`` naming ``name`` unless ``0 < value < inf`` (NaN fails too)."""
    if not 0.0 < value < math.inf:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _non_negative(name: str, value) -> None:
    if not value >= 0.0:  # NaN fails
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")


def positive_quotes(bid: float | None, ask: float | None
                    ) -> tuple[float | None, float | None]:
    """``(bid, ask)`` with a side that is <= 0 (or not finite) replaced by ``None``: such a
    quote is not placed (see the module doc for why it is dropped, not clamped)."""
    if bid is not None and not 0.0 < bid < math.inf:
        bid = None
    if ask is not None and not 0.0 < ask < math.inf:
        ask = None
    return bid, ask


# --------------------------------------------------------------------------- quotes
def drift_shift(mu: float, gamma: float, sigma: float) -> float:
    """The drift as inventory, ``mu/(gamma·sigma²)`` lots (GLFT extension).

    Quoting with ``q − drift_shift(mu, gamma, sigma)`` leans both quotes toward the trend.
    """
    _positive("gamma", gamma)
    _positive("sigma", sigma)
    if mu == 0.0:
        return 0.0
    return mu / (gamma * sigma * sigma)


def linear_quotes(mid: float, q: float, half_spread: float, skew: float
                  ) -> tuple[float, float]:
    """A constant half-spread around the mid, moved against inventory by ``skew`` per lot:
    ``bid = mid − half_spread − skew·q``, ``ask = mid + half_spread − skew·q`` (unrounded;
    ``half_spread`` and ``skew`` in price, ``q`` in lots)."""
    _positive("half_spread", half_spread)
    if not (math.isfinite(skew) and skew >= 0):
        raise ValueError(f"skew must be a finite number >= 0, got {skew!r}")
    centre = mid - skew * q
    return centre - half_spread, centre + half_spread


def reservation_price(mid: float, q: float, gamma: float, sigma: float, tau: float,
                      drift: float = 0.0) -> float:
    """``r = mid − q·gamma·sigma²·tau`` (plus ``drift·tau`` when a drift is given)."""
    _positive("gamma", gamma)
    _positive("sigma", sigma)
    _non_negative("tau", tau)
    return mid + drift * tau - q * gamma * sigma * sigma * tau


def optimal_spread(gamma: float, sigma: float, tau: float, kappa: float) -> float:
    """Total AS spread ``gamma·sigma²·tau + (2/gamma)·ln(1 + gamma/kappa)``."""
    _positive("gamma", gamma)
    _positive("sigma", sigma)
    _positive("kappa", kappa)
    _non_negative("tau", tau)
    return gamma * sigma * sigma * tau + (2.0 / gamma) * math.log1p(gamma / kappa)


def as_quotes(mid: float, q: float, gamma: float, sigma: float, tau: float, kappa: float,
              drift: float = 0.0) -> tuple[float, float]:
    """AS quotes ``(bid, ask) = r ∓ spread/2`` (unrounded; either may be <= 0 far from
    zero inventory, see :func:`as_quotes_rounded`)."""
    _positive("mid", mid)
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
    _positive("tick", tick)
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
                      drift: float = 0.0) -> tuple[float | None, float | None]:
    """:func:`as_quotes` on the tick grid with a minimum spread (bid < ask always); a side
    that would be <= 0 is ``None`` (not quoted, :func:`positive_quotes`)."""
    _positive("tick", tick)
    bid, ask = as_quotes(mid, q, gamma, sigma, tau, kappa, drift)
    return positive_quotes(*round_quotes(bid, ask, tick, min_spread))


def glft_coefficients(gamma: float, sigma: float, A: float, kappa: float
                      ) -> tuple[float, float]:
    """``(c1, c2)`` of the GLFT approximation: half-spread base and skew per lot.

    ``c1 = (1/gamma)·ln(1 + gamma/kappa)``;
    ``c2 = sqrt(gamma·sigma²/(2·A·kappa) · (1 + gamma/kappa)^(1 + kappa/gamma))``.
    """
    _positive("gamma", gamma)
    _positive("sigma", sigma)
    _positive("A", A)
    _positive("kappa", kappa)
    ratio = gamma / kappa
    c1 = math.log1p(ratio) / gamma
    # (1 + g/k)^(1 + k/g) computed in logs: it overflows for tiny gamma otherwise
    log_pow = (1.0 + 1.0 / ratio) * math.log1p(ratio)
    c2 = math.sqrt(gamma * sigma * sigma / (2.0 * A * kappa) * math.exp(log_pow))
    return c1, c2


def inventory_limits(q: float, bid, ask, max_inventory: float | None):
    """The hard limit ``Q``: no bid at ``q ≥ Q``, no ask at ``q ≤ −Q`` (``None`` side)."""
    if max_inventory is not None:
        if q >= max_inventory - _EPS:
            bid = None
        if q <= -max_inventory + _EPS:
            ask = None
    return bid, ask


def glft_quotes(mid: float, q: float, gamma: float, sigma: float, A: float, kappa: float,
                drift: float = 0.0, max_inventory: float | None = None
                ) -> tuple[float | None, float | None]:
    """Infinite-horizon quotes: ``bid = mid − c1 − (q' + ½)c2``, ``ask = mid + c1 − (q' − ½)c2``.

    ``q' = q − drift/(gamma·sigma²)``. With ``max_inventory = Q``: ``bid`` is ``None`` when
    ``q ≥ Q`` and ``ask`` is ``None`` when ``q ≤ −Q`` (the limits use the true ``q``).
    """
    _positive("mid", mid)
    c1, c2 = glft_coefficients(gamma, sigma, A, kappa)
    qe = q - drift_shift(drift, gamma, sigma)
    bid: float | None = mid - c1 - (qe + 0.5) * c2
    ask: float | None = mid + c1 - (qe - 0.5) * c2
    return inventory_limits(q, bid, ask, max_inventory)


def glft_quotes_rounded(mid: float, q: float, gamma: float, sigma: float, A: float,
                        kappa: float, tick: float, min_spread: float = 0.0,
                        drift: float = 0.0, max_inventory: float | None = None
                        ) -> tuple[float | None, float | None]:
    """:func:`glft_quotes` on the tick grid with a minimum spread (bid < ask always); a side
    closed by the limit or that would be <= 0 is ``None``."""
    _positive("tick", tick)
    bid, ask = glft_quotes(mid, q, gamma, sigma, A, kappa, drift, None)
    bid, ask = positive_quotes(*round_quotes(bid, ask, tick, min_spread))
    return inventory_limits(q, bid, ask, max_inventory)


# --------------------------------------------------------------------------- sizes
def quote_sizes(position: float, lot: float, eta: float = 0.0,
                max_inventory: float = math.inf, step: float | None = None
                ) -> tuple[float, float]:
    """Order sizes ``(bid_size, ask_size)`` in contracts for a ``position`` in contracts.

    The side that would grow inventory shrinks as ``lot·exp(−eta·|q|)`` with
    ``q = position/lot``; the other side keeps ``lot``. Both are capped so that a full fill
    never takes ``|position|`` past ``max_inventory`` lots, and rounded down to ``step``.
    """
    _positive("lot", lot)
    _non_negative("eta", eta)
    _non_negative("max_inventory", max_inventory)
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
    _positive("A", A)
    _positive("kappa", kappa)
    if np.ndim(delta):
        return A * np.exp(-kappa * np.asarray(delta, dtype=float))
    return A * math.exp(-kappa * float(delta))


def fill_probability(delta: float, A: float, kappa: float, dt: float) -> float:
    """``P(fill within dt) = 1 − exp(−A·exp(−kappa·delta)·dt)`` (Poisson arrivals)."""
    _positive("A", A)
    _positive("kappa", kappa)
    _non_negative("dt", dt)
    return -math.expm1(-A * math.exp(-kappa * max(delta, 0.0)) * dt)
