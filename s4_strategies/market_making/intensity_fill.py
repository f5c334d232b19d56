"""The intensity fill model of ``MarketMakingBroker``: Poisson fills at the AS rate.

A resting order at distance ``delta`` from the mid it was quoted against fills at rate
``lambda = A·exp(−kappa·delta)`` (:func:`.quotes.intensity`). With ``require_touch`` a fill
also needs a trade at or through its price (ticks) or the bar's range to reach it: the hazard
accumulated since the last touch, ``Λ = Σ lambda·dt``, fills it on a touch with probability
``1 − e^(−Λ)``. Without, each event fills it with probability ``1 − e^(−lambda·dt)``. One
uniform draw per event and order, from the broker's seeded generator, whatever happens, so the
stream of draws does not depend on touches.
"""

from __future__ import annotations

import math

from .quotes import intensity as intensity_rate

__all__ = ["IntensityFills", "touched"]


def touched(data, limit: float, buy: bool, eps: float, tick_feed: bool) -> bool:
    """Whether the current event reached ``limit``: a sell print at or below a bid (a buy print
    at or above an ask) on ticks, the bar's low (high) on bars."""
    if tick_feed:
        price, side = data.lines.trade_price[0], data.lines.trade_side[0]
        if not math.isfinite(price):
            return False
        if math.isfinite(side) and side == (1.0 if buy else -1.0):
            return False
        return (price <= limit + eps) if buy else (price >= limit - eps)
    return data.low[0] <= limit + eps if buy else data.high[0] >= limit - eps


class IntensityFills:
    """Mixin for ``MarketMakingBroker``: needs ``self.p.intensity``, ``self.p.require_touch``,
    ``self._rng``, ``self.data_name`` and ``self._fill``."""

    def _intensity_params(self, order):
        """``(A, kappa)`` for the order, or ``None`` while they are not known yet."""
        spec = self.p.intensity
        if isinstance(spec, dict):
            spec = spec.get(self.data_name(order.data))
        if spec is not None:
            return float(spec[0]), float(spec[1])
        A, kappa = order.info.get("A"), order.info.get("kappa")
        if A is None or kappa is None:
            return None  # the strategy's calibration is still warming up: no fill yet
        return float(A), float(kappa)

    def _intensity(self, order, st, limit, buy, eps, dt, tick_feed):
        u = self._rng.random()  # drawn on every step: the stream does not depend on touches
        params = self._intensity_params(order)
        if params is None:
            return
        mid = order.info.get("mid")
        if mid is None:
            mid = order.data.close[-1] if len(order.data) > 1 else order.data.close[0]
        st.hazard += intensity_rate(abs(limit - mid), *params) * dt
        if self.p.require_touch and not touched(order.data, limit, buy, eps, tick_feed):
            return
        hazard, st.hazard = st.hazard, 0.0
        if u < -math.expm1(-hazard):
            self._fill(order, st, limit, "intensity")
