"""Rolling estimation of the quoting inputs from a stream of events: ``sigma``, the fill
intensity ``A, kappa`` and an EMA drift. Plain Python and numpy (no backtrader): feed it
numbers with :meth:`RollingEstimator.update` and read the estimates back.

Units as in :mod:`s4_strategies.market_making.quotes`: time in (epoch) seconds, ``sigma`` in
price per √second, ``kappa`` in 1/price, ``A`` in fills per second, drifts in price per second.
The maths is in :mod:`s4_strategies.market_making.calibration`; this module keeps the rolling
windows and decides when to (re)calibrate.
"""

from __future__ import annotations

import collections
import math

import numpy as np

from .calibration import (
    calibrate_from_excursions,
    calibrate_from_trades,
    ema_lag,
    ema_trend,
    ema_update,
    realized_sigma,
)

__all__ = ["RollingEstimator", "drift_from_return"]

_NAN = float("nan")


def drift_from_return(pred: float, mid: float, horizon: float) -> float:
    """Drift (price per second) from a predicted (log) return ``pred`` over ``horizon``
    seconds: ``(e^pred − 1)·mid/horizon``; 0 when the prediction is not finite."""
    if not math.isfinite(pred):
        return 0.0
    return math.expm1(pred) * mid / horizon


def _price(x: float) -> bool:
    """A usable price: finite and > 0 (a zero or negative print is a data error)."""
    return 0.0 < x < math.inf


def _trim(dq: collections.deque, start: float) -> None:
    while dq and dq[0][0] < start:
        dq.popleft()


class RollingEstimator:
    """Rolling-window estimates of ``sigma``, ``A, kappa`` and an EMA drift for one instrument.

    Call :meth:`update` once per event, in time order. What it keeps:

    - ``marks``: ``(t, price)`` over the last ``sigma_window`` seconds, for ``sigma``
      (:func:`realized_sigma`); the price is the mid (``sigma_source="mid"``) or the trade
      price on tick streams / the close on bars (``sigma_source="trade"``)
    - ``trades`` (``ticks=True``): ``(t, side·(price − mid))`` aggressor distances over
      ``calib_window`` seconds, for :func:`calibrate_from_trades`
    - ``excursions`` (bars): ``(t, high − previous mid, previous mid − low)`` over
      ``calib_window`` seconds, for :func:`calibrate_from_excursions`
    - two time-aware EMAs of the mid (time constants ``trend_fast``, ``trend_slow``) and an
      EMA of the sampling interval, for :meth:`ema_drift`

    Every ``recalibrate`` seconds (on the first update, then whenever an update is at least
    that late) the estimates are refreshed: ``sigma`` once the marks span a quarter of
    ``sigma_window``; ``A, kappa`` once ``min_trades`` trades (``min_bars`` bars) are in the
    window. A value given to the constructor (``sigma``, ``A`` or ``kappa``) is fixed and never
    re-estimated; an estimate that cannot be made leaves the previous one (``None`` at first).

    Bad prices are dropped before they reach any estimate: an event whose ``mid`` is not a
    finite number > 0 is ignored entirely (no mark, trade, excursion or EMA step); a trade
    price that is not finite and > 0 counts as no trade; a bar whose high, low or close is
    not finite and > 0 adds no excursion (and no mark with ``sigma_source="trade"``). A
    single zero print would otherwise be a jump of the whole price into ``sigma``.
    """

    def __init__(self, *, ticks: bool = False, sigma: float | None = None,
                 A: float | None = None, kappa: float | None = None,
                 sigma_window: float = 120.0, calib_window: float = 300.0,
                 recalibrate: float = 10.0, trend_fast: float = 10.0, trend_slow: float = 60.0,
                 min_trades: int = 30, min_bars: int = 48, sigma_source: str = "mid"):
        if sigma_source not in ("mid", "trade"):
            raise ValueError(f"sigma_source must be 'mid' or 'trade', got {sigma_source!r}")
        self.ticks = bool(ticks)
        self.sigma_window, self.calib_window = sigma_window, calib_window
        self.recalibrate = recalibrate
        self.trend_fast, self.trend_slow = trend_fast, trend_slow
        self.min_trades, self.min_bars = min_trades, min_bars
        self.sigma_source = sigma_source
        self.fixed = dict(sigma=sigma, A=A, kappa=kappa)
        self.sigma, self.A, self.kappa = sigma, A, kappa
        self.marks: collections.deque = collections.deque()
        self.trades: collections.deque = collections.deque()
        self.excursions: collections.deque = collections.deque()
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.last_mid: float | None = None
        self.ema_fast: float | None = None
        self.ema_slow: float | None = None
        self.dt_avg: float | None = None
        self.next_calib = -math.inf

    _PARAMS = ("sigma", "A", "kappa", "sigma_window", "calib_window", "recalibrate",
               "trend_fast", "trend_slow", "min_trades", "min_bars", "sigma_source")

    @classmethod
    def from_params(cls, p, ticks: bool = False) -> RollingEstimator:
        """Build one from any object with the strategy's parameter attributes (``self.p``,
        an :class:`~s4_strategies.market_making.instrument.InstrumentParams`)."""
        return cls(ticks=ticks, **{k: getattr(p, k) for k in cls._PARAMS})

    # ------------------------------------------------------------------ updates
    def update(self, t: float, mid: float, *, high: float = _NAN, low: float = _NAN,
               close: float = _NAN, trade_price: float = _NAN, trade_side: float = _NAN,
               bar_seconds: float | None = None) -> None:
        """Add one event at time ``t`` with mid ``mid``.

        Tick streams (``ticks=True``) pass ``trade_price`` (NaN: no trade in this event) and
        ``trade_side`` (+1 buy, −1 sell; NaN: inferred from the side of the mid); bar
        streams pass ``high``, ``low`` and ``close``. ``bar_seconds`` (the bar length) is used
        to turn bar touch frequencies into rates (1 s when unknown). Prices that are not
        finite and > 0 are dropped (see the class doc).
        """
        if not _price(mid):
            return
        if self.first_t is None:
            self.first_t = t
        if self.ticks:
            if _price(trade_price):
                side = trade_side if math.isfinite(trade_side) else \
                    math.copysign(1.0, trade_price - mid)
                self.trades.append((t, side * (trade_price - mid)))
        else:
            good_bar = _price(high) and _price(low) and _price(close)
            if good_bar and self.last_mid is not None:
                self.excursions.append((t, high - self.last_mid, self.last_mid - low))
        mark = mid
        if self.sigma_source == "trade":
            mark = trade_price if self.ticks else (close if good_bar else _NAN)
        if _price(mark):
            self.marks.append((t, mark))
        _trim(self.marks, t - self.sigma_window)
        _trim(self.trades, t - self.calib_window)
        _trim(self.excursions, t - self.calib_window)
        self._update_emas(t, mid)
        self.last_t, self.last_mid = t, mid
        if t >= self.next_calib:
            self.calibrate(t, bar_seconds)

    def _update_emas(self, t: float, mid: float) -> None:
        if self.last_t is None:
            self.ema_fast = self.ema_slow = mid
            return
        dt = t - self.last_t
        if dt > 0:
            self.dt_avg = ema_update(self.dt_avg, dt, dt, self.trend_slow)
            self.ema_fast = ema_update(self.ema_fast, mid, dt, self.trend_fast)
            self.ema_slow = ema_update(self.ema_slow, mid, dt, self.trend_slow)

    # ------------------------------------------------------------------ calibration
    def calibrate(self, now: float, bar_seconds: float | None = None) -> None:
        """Re-estimate ``sigma`` and ``A, kappa`` from the windows now (``update`` calls it
        every ``recalibrate`` seconds) and schedule the next calibration."""
        self.next_calib = now + self.recalibrate
        if self.fixed["sigma"] is None:
            self._calibrate_sigma()
        if self.fixed["kappa"] is None or self.fixed["A"] is None:
            self._calibrate_intensity(now, bar_seconds)

    def _calibrate_sigma(self) -> None:
        if len(self.marks) < 3:
            return
        t = np.fromiter((x[0] for x in self.marks), float)
        m = np.fromiter((x[1] for x in self.marks), float)
        s = realized_sigma(t, m)
        if math.isfinite(s) and s > 0 and (t[-1] - t[0]) >= 0.25 * self.sigma_window:
            self.sigma = s

    def _fit_intensity(self, now: float, bar_seconds: float | None):
        if self.ticks and len(self.trades) >= self.min_trades:
            d = np.fromiter((x[1] for x in self.trades), float)
            span = min(self.calib_window, now - self.first_t)
            return calibrate_from_trades(d, span)
        if not self.ticks and len(self.excursions) >= self.min_bars:
            up = np.fromiter((x[1] for x in self.excursions), float)
            dn = np.fromiter((x[2] for x in self.excursions), float)
            return calibrate_from_excursions(np.concatenate([up, dn]), bar_seconds or 1.0)
        return None

    def _calibrate_intensity(self, now: float, bar_seconds: float | None) -> None:
        try:
            fit = self._fit_intensity(now, bar_seconds)
        except ValueError:
            return
        if fit is None:
            return
        A, kappa = fit
        if math.isfinite(A) and math.isfinite(kappa) and A > 0 and kappa > 0:
            fixed = self.fixed
            self.A = fixed["A"] if fixed["A"] is not None else A
            self.kappa = fixed["kappa"] if fixed["kappa"] is not None else kappa

    # ------------------------------------------------------------------ reading
    def ready(self, model: str = "as") -> bool:
        """Whether the quotes of ``model`` can be computed: ``sigma`` and ``kappa`` known, and
        ``A`` too for ``"glft"``; always for ``"linear"`` (a fixed spread)."""
        if model == "linear":
            return True
        return self.sigma is not None and self.kappa is not None and (
            model == "as" or self.A is not None)

    def ema_drift(self) -> float:
        """Drift (price per second) from the two EMAs of the mid: on a ramp the fast EMA lags
        less than the slow one, ``mu = (fast − slow)/(lag_slow − lag_fast)``
        (:func:`ema_trend`). 0 before ``trend_slow`` seconds of data, or when both EMAs are
        faster than the sampling (no slope to read)."""
        if self.dt_avg is None or self.last_t - self.first_t < self.trend_slow:
            return 0.0
        lag_f = ema_lag(self.trend_fast, self.dt_avg)
        lag_s = ema_lag(self.trend_slow, self.dt_avg)
        if not lag_s - lag_f > 1e-9 * max(lag_s, 1.0):
            return 0.0
        return ema_trend(self.ema_fast, self.ema_slow, lag_f, lag_s)

    def estimates(self) -> dict:
        """Current ``sigma, A, kappa`` (``None`` where not known yet)."""
        return dict(sigma=self.sigma, A=self.A, kappa=self.kappa)
