"""Avellaneda–Stoikov market making with inventory control, sessions and a trend lean.

``AvellanedaStoikovStrategy`` quotes a bid and an ask on every data feed, refreshing them on
every bar or tick (cancel-and-replace when a quote moves). The maths is in
``s4_strategies.market_making``; units are documented there: **time in seconds**, ``sigma``
in price per √second, ``kappa`` in 1/price, ``A`` in fills per second, inventory ``q`` in
lots (position / ``lot``), ``gamma`` in 1/(price·lot).

Quote on each event, per feed::

    q    = position / lot
    mu   = trend (price/second): EMA slope, or pred_return·mid/trend_horizon from a model
    q'   = q − clip(trend_weight·mu/(gamma·sigma²), ±trend_cap)        # GLFT drift term
    AS:    bid, ask = r ∓ spread/2,  r = mid − q'·gamma·sigma²·tau      (model="as")
    GLFT:  bid = mid − c1 − (q'+½)c2,  ask = mid + c1 − (q'−½)c2        (model="glft")
    both quotes move by −q·(inventory_nudge + close_skew·ramp)·half_spread,
    ramp = 1 − tau/close_window in the last close_window seconds of a session, else 0
    sizes: lot on the side that reduces |q|, lot·exp(−eta·|q|) on the side that grows it,
    capped so |position| never exceeds max_inventory lots

``tau = min(horizon, time to session_close)``: a rolling horizon for 24/7 markets
(``session_close=None``), the classic time to a daily close (``"HH:MM"`` UTC) with
``horizon=inf``, or both (a rolling horizon that shrinks to 0 into the close). With
``flatten_at_close`` quotes are pulled ``flatten_before`` seconds ahead of the close and the
inventory is closed with a market order (taker fee).

``sigma`` (realised volatility of the mid over ``sigma_window`` seconds) and ``A, kappa``
(fill intensity; from trade distances to the mid on tick feeds, from bar excursions on bars)
are re-estimated every ``recalibrate`` seconds over a rolling window unless given. Per
instrument parameters: ``instruments={"BTCUSDT": dict(lot=0.001, tick=0.1), ...}`` keyed by
the feed's name.

Trend: ``trend="ema"`` (default) the slope of two time-based EMAs of the mid;
``trend=None`` none; ``trend="pred_return"`` (any line name) a predicted return on the feed;
``trend=callable`` a factory called as ``trend(data)`` inside ``__init__`` that returns an
indicator with a ``pred_return`` line (e.g. ``functools.partial(S4Indicator, model=m)``).
A predicted (log) return ``r`` over ``trend_horizon`` seconds (default: the indicator's
``pred_horizon`` bars if it declares one, else one bar) becomes
``mu = (e^r − 1)·mid/trend_horizon``.
"""

from __future__ import annotations

import collections
import math
from types import SimpleNamespace

import backtrader as bt
import numpy as np

from feeds.bartime import num_to_epoch

from .. import market_making as mm

__all__ = ["AvellanedaStoikovStrategy"]


def _has_line(data, name: str) -> bool:
    return hasattr(data.lines, name)


class _Book:
    """Per-feed state: configuration, rolling windows, calibration and live orders."""

    def __init__(self, cfg: SimpleNamespace, data):
        self.cfg = cfg
        self.tick_feed = _has_line(data, "trade_price")
        self.has_mid = _has_line(data, "mid")
        self.has_bbo = _has_line(data, "bid") and _has_line(data, "ask")
        self.close_s = mm.parse_session_close(cfg.session_close)
        self.seen = 0
        self.bar_seconds = cfg.bar_seconds
        self.first_t = None
        self.last_t = None
        self.last_mid = None
        self.marks = collections.deque()       # (t, mid) for sigma
        self.trades = collections.deque()      # (t, aggressor distance) for A, kappa
        self.excursions = collections.deque()  # (t, up, down) for A, kappa on bars
        self.ema_fast = self.ema_slow = None
        self.dt_avg = None
        self.sigma = cfg.sigma
        self.A = cfg.A
        self.kappa = cfg.kappa
        self.next_calib = -math.inf
        self.orders = {"bid": None, "ask": None}
        self.flatten = None
        self.indicator = None
        self.n_quotes = 0
        self.last = None


class AvellanedaStoikovStrategy(bt.Strategy):
    """Two-sided Avellaneda–Stoikov / GLFT quoting (see the module doc for the maths).

    Params (units: seconds, price, lots; every param can be overridden per feed through
    ``instruments``):

    - ``model``: ``"as"`` (finite horizon) or ``"glft"`` (infinite horizon, needs ``A``)
    - ``gamma``: risk aversion, 1/(price·lot); one lot moves the AS reservation price by
      ``gamma·sigma²·tau``. Rule of thumb: ``gamma ≈ s/(kappa·sigma²·tau)`` makes it
      ``s/kappa`` (``s`` half-spreads)
    - ``sigma``, ``A``, ``kappa``: fixed values, or ``None`` to estimate them from the data
    - ``horizon``: the rolling horizon (s); ``tau = min(horizon, time to the close)``
    - ``session_close``: daily close ``"HH:MM"`` UTC, or ``None`` (24/7)
    - ``close_window``, ``close_skew``: in the last ``close_window`` seconds the inventory
      skew grows linearly to ``close_skew`` half-spreads per lot
    - ``flatten_at_close``, ``flatten_before``: pull quotes and flatten before the close
    - ``lot``: base order size (contracts); ``size_step``: size increment
    - ``max_inventory``: hard limit in lots; ``eta``: size decay per lot of inventory
    - ``tick``: price increment; ``min_spread`` (price) / ``min_spread_bps``: minimum width
    - ``trend``, ``trend_fast``, ``trend_slow`` (EMA time constants, s), ``trend_weight``,
      ``trend_cap`` (lots), ``trend_horizon`` (s)
    - ``inventory_nudge``: manual skew toward reducing inventory, half-spreads per lot
    - ``sigma_source``: ``"mid"`` (default) or ``"trade"`` (trade prices on tick feeds,
      closes on bars) for the volatility estimate
    - ``sigma_window``, ``calib_window``, ``recalibrate`` (s); ``min_trades``/``min_bars``
      needed before a calibration is trusted
    - ``requote``: replace a resting quote when it should move by at least this fraction
      of the half-spread (and at least one tick); a quote that does not move keeps its place
      in the queue
    - ``post_only``: keep quotes one tick off the opposite best when a BBO is available,
      and flag orders post-only (``MarketMakingBroker`` rejects them rather than let them
      take liquidity if the book has moved through them by the time they arrive)
    - ``bar_seconds``: bar length (``None``: from the first two bars); ``stamp_at_open``:
      bar timestamps are bar opens (the feeds here), so "now" is the stamp plus a bar
    """

    params = dict(
        model="as",
        gamma=3e-3,
        sigma=None,
        A=None,
        kappa=None,
        horizon=60.0,
        session_close=None,
        close_window=0.0,
        close_skew=1.0,
        flatten_at_close=False,
        flatten_before=0.0,
        lot=0.01,
        size_step=0.0001,
        max_inventory=5.0,
        eta=0.3,
        tick=0.01,
        min_spread=0.0,
        min_spread_bps=0.0,
        trend="ema",
        trend_fast=10.0,
        trend_slow=60.0,
        trend_weight=1.0,
        trend_cap=1.0,
        trend_horizon=None,
        inventory_nudge=0.0,
        sigma_window=120.0,
        sigma_source="mid",
        calib_window=300.0,
        recalibrate=10.0,
        min_trades=30,
        min_bars=48,
        requote=0.1,
        post_only=True,
        bar_seconds=None,
        stamp_at_open=True,
        instruments=None,
    )

    _SKIP = ("instruments",)

    def __init__(self):
        base = {k: getattr(self.p, k) for k in self.p._getkeys() if k not in self._SKIP}
        overrides = dict(self.p.instruments or {})
        self._books: dict = {}
        for i, data in enumerate(self.datas):
            name = data._name or f"data{i}"
            extra = overrides.pop(name, {})
            unknown = set(extra) - set(base)
            if unknown:
                raise ValueError(f"unknown parameter(s) for {name}: {sorted(unknown)}")
            cfg = SimpleNamespace(**{**base, **extra})
            if cfg.model not in ("as", "glft"):
                raise ValueError("model must be 'as' or 'glft'")
            if cfg.sigma_source not in ("mid", "trade"):
                raise ValueError("sigma_source must be 'mid' or 'trade'")
            book = _Book(cfg, data)
            if callable(cfg.trend):
                book.indicator = cfg.trend(data)
            self._books[data] = book
        if overrides:
            raise ValueError(f"instruments given for unknown feeds: {sorted(overrides)}")

    # ------------------------------------------------------------------ events
    def prenext(self):
        self.next()

    def notify_order(self, order):
        if order.alive():
            return
        book = self._books.get(order.data)
        if book is None:
            return
        for side, o in book.orders.items():
            if o is not None and o.ref == order.ref:
                book.orders[side] = None
        if book.flatten is not None and book.flatten.ref == order.ref:
            book.flatten = None

    def next(self):
        for data, book in self._books.items():
            n = len(data)
            if n == 0 or n == book.seen:
                continue  # this feed did not move
            book.seen = n
            mid = self._mid(data, book)
            if not math.isfinite(mid):
                continue
            now = self._now(data, book)
            self._observe(data, book, now, mid)
            self._quote(data, book, now, mid)

    # ------------------------------------------------------------------ clock, mid
    def _now(self, data, book) -> float:
        t = num_to_epoch(data.datetime[0])
        if book.tick_feed or not book.cfg.stamp_at_open:
            return t
        if book.cfg.bar_seconds is None and 1 < len(data) <= 20:
            # the shortest spacing of the first bars (a weekend gap is not a bar)
            gap = t - num_to_epoch(data.datetime[-1])
            if gap > 0:
                book.bar_seconds = min(book.bar_seconds or math.inf, gap)
        return t + (book.bar_seconds or 0.0)

    @staticmethod
    def _mid(data, book) -> float:
        if book.has_mid:
            m = data.lines.mid[0]
            if math.isfinite(m):
                return m
        return data.close[0]

    # ------------------------------------------------------------------ estimation
    def _observe(self, data, book, now, mid):
        cfg = book.cfg
        if book.first_t is None:
            book.first_t = now
        if book.tick_feed:
            price = data.lines.trade_price[0]
            if math.isfinite(price):
                side = data.lines.trade_side[0]
                side = side if math.isfinite(side) else math.copysign(1.0, price - mid)
                book.trades.append((now, side * (price - mid)))
        elif book.last_mid is not None:
            book.excursions.append((now, data.high[0] - book.last_mid,
                                    book.last_mid - data.low[0]))
        mark = mid
        if cfg.sigma_source == "trade":
            mark = data.lines.trade_price[0] if book.tick_feed else data.close[0]
        if math.isfinite(mark):
            book.marks.append((now, mark))
        for window, dq in ((cfg.sigma_window, book.marks), (cfg.calib_window, book.trades),
                           (cfg.calib_window, book.excursions)):
            while dq and dq[0][0] < now - window:
                dq.popleft()
        if book.last_t is not None:
            dt = now - book.last_t
            if dt > 0:
                book.dt_avg = mm.ema_update(book.dt_avg, dt, dt, cfg.trend_slow)
                book.ema_fast = mm.ema_update(book.ema_fast, mid, dt, cfg.trend_fast)
                book.ema_slow = mm.ema_update(book.ema_slow, mid, dt, cfg.trend_slow)
        else:
            book.ema_fast = book.ema_slow = mid
        book.last_t, book.last_mid = now, mid
        if now >= book.next_calib:
            self._calibrate(book, now)

    def _calibrate(self, book, now):
        cfg = book.cfg
        book.next_calib = now + cfg.recalibrate
        if cfg.sigma is None and len(book.marks) >= 3:
            t = np.fromiter((x[0] for x in book.marks), float)
            m = np.fromiter((x[1] for x in book.marks), float)
            s = mm.realized_sigma(t, m)
            if math.isfinite(s) and s > 0 and (t[-1] - t[0]) >= 0.25 * cfg.sigma_window:
                book.sigma = s
        if cfg.kappa is None or (cfg.A is None):
            try:
                if book.tick_feed and len(book.trades) >= cfg.min_trades:
                    d = np.fromiter((x[1] for x in book.trades), float)
                    span = min(cfg.calib_window, now - book.first_t)
                    A, kappa = mm.calibrate_from_trades(d, span)
                elif not book.tick_feed and len(book.excursions) >= cfg.min_bars:
                    up = np.fromiter((x[1] for x in book.excursions), float)
                    dn = np.fromiter((x[2] for x in book.excursions), float)
                    A, kappa = mm.calibrate_from_excursions(np.concatenate([up, dn]),
                                                            book.bar_seconds or 1.0)
                else:
                    return
            except ValueError:
                return
            if math.isfinite(A) and math.isfinite(kappa) and A > 0 and kappa > 0:
                book.A = cfg.A if cfg.A is not None else A
                book.kappa = cfg.kappa if cfg.kappa is not None else kappa

    def _trend(self, data, book, mid) -> float:
        """Drift estimate in price per second (0 when unavailable)."""
        cfg = book.cfg
        if cfg.trend is None or cfg.trend == "none" or cfg.trend_weight == 0:
            return 0.0
        if cfg.trend == "ema":
            if book.dt_avg is None or book.last_t - book.first_t < cfg.trend_slow:
                return 0.0
            lag_f = mm.ema_lag(cfg.trend_fast, book.dt_avg)
            lag_s = mm.ema_lag(cfg.trend_slow, book.dt_avg)
            if not lag_s - lag_f > 1e-9 * max(lag_s, 1.0):
                return 0.0  # both EMAs faster than the sampling: no slope to read
            return mm.ema_trend(book.ema_fast, book.ema_slow, lag_f, lag_s)
        if book.indicator is not None:
            ind = book.indicator
            line = ind.lines.pred_return if _has_line(ind, "pred_return") else ind.lines[0]
            pred = line[0]
        elif isinstance(cfg.trend, str) and _has_line(data, cfg.trend):
            pred = getattr(data.lines, cfg.trend)[0]
        else:
            raise ValueError(f"trend={cfg.trend!r}: not 'ema', None, a line of the feed or "
                             "a callable returning an indicator")
        if not math.isfinite(pred):
            return 0.0
        horizon = cfg.trend_horizon
        if horizon is None:
            bars = getattr(book.indicator, "pred_horizon", None) or 1  # in bars, if declared
            horizon = bars * book.bar_seconds if book.bar_seconds else cfg.trend_slow
        return math.expm1(pred) * mid / horizon  # a (log) return over the horizon

    # ------------------------------------------------------------------ quoting
    def _quote(self, data, book, now, mid):
        cfg = book.cfg
        position = self.getposition(data).size
        to_close = mm.time_to_close(now, book.close_s)
        if book.close_s is not None and cfg.flatten_at_close and to_close <= cfg.flatten_before:
            self._flatten(data, book, position)
            return
        ready = book.sigma is not None and book.kappa is not None and (
            cfg.model == "as" or book.A is not None)
        if not ready:
            return
        gamma, sigma, kappa = cfg.gamma, book.sigma, book.kappa
        q = position / cfg.lot
        mu = self._trend(data, book, mid)
        lean = cfg.trend_weight * mm.drift_shift(mu, gamma, sigma)
        lean = max(-cfg.trend_cap, min(cfg.trend_cap, lean))
        qe = q - lean
        if cfg.model == "as":
            tau = max(mm.session_tau(now, book.close_s, cfg.horizon), 1e-3)
            bid, ask = mm.as_quotes(mid, qe, gamma, sigma, tau, kappa)
        else:
            bid, ask = mm.glft_quotes(mid, qe, gamma, sigma, book.A, kappa)
        half = 0.5 * (ask - bid)
        ramp = 0.0
        if book.close_s is not None and cfg.close_window > 0 and to_close < cfg.close_window:
            ramp = 1.0 - to_close / cfg.close_window
        extra = -q * (cfg.inventory_nudge + cfg.close_skew * ramp) * half
        bid, ask = bid + extra, ask + extra
        if cfg.post_only and book.has_bbo:
            best_bid, best_ask = data.lines.bid[0], data.lines.ask[0]
            if math.isfinite(best_ask):
                bid = min(bid, best_ask - cfg.tick)
            if math.isfinite(best_bid):
                ask = max(ask, best_bid + cfg.tick)
        min_spread = max(cfg.min_spread, cfg.min_spread_bps * 1e-4 * mid)
        bid, ask = mm.round_quotes(bid, ask, cfg.tick, min_spread)
        bid_size, ask_size = mm.quote_sizes(position, cfg.lot, cfg.eta, cfg.max_inventory,
                                            cfg.size_step)
        book.last = dict(bid=bid, ask=ask, bid_size=bid_size, ask_size=ask_size, mid=mid,
                         tau=min(cfg.horizon, to_close), lean=lean, q=q)
        threshold = max(cfg.requote * half, 0.5 * cfg.tick)
        info = dict(mid=mid, A=book.A, kappa=kappa, sigma=sigma, post_only=cfg.post_only)
        self._place(data, book, "bid", bid, bid_size, threshold, info)
        self._place(data, book, "ask", ask, ask_size, threshold, info)

    def _place(self, data, book, side, price, size, threshold, info):
        order = book.orders[side]
        step = book.cfg.size_step or 0.0
        if order is not None and order.alive():
            rem = abs(order.executed.remsize)
            moved = abs(order.created.price - price) >= threshold
            too_big = rem > size + 0.5 * step
            too_small = rem < 0.5 * size
            if not (moved or too_big or too_small):
                return
            self.cancel(order)
            if order.alive():
                return  # not cancellable yet (not in the book): try again next event
            book.orders[side] = None
        if size <= 0:
            return
        make = self.buy if side == "bid" else self.sell
        book.orders[side] = make(data=data, size=size, price=price, exectype=bt.Order.Limit,
                                 **info)
        book.n_quotes += 1

    def _flatten(self, data, book, position):
        for side, order in book.orders.items():
            if order is not None and order.alive():
                self.cancel(order)
                if not order.alive():
                    book.orders[side] = None
        step = book.cfg.size_step or 1e-12
        if abs(position) < 0.5 * step or (book.flatten is not None and book.flatten.alive()):
            return
        make = self.sell if position > 0 else self.buy
        book.flatten = make(data=data, size=abs(position), exectype=bt.Order.Market,
                            flatten=True)

    # ------------------------------------------------------------------ inspection
    def quotes(self, data=None) -> dict | None:
        """The last quote computed for a feed: ``bid, ask, bid_size, ask_size, mid, tau,
        lean`` (lots of drift shift) and ``q``; ``None`` before the first quote."""
        return self._books[data if data is not None else self.datas[0]].last

    def calibration(self, data=None) -> dict:
        """Current ``sigma, A, kappa`` (and bar length) of a feed (the first by default)."""
        book = self._books[data if data is not None else self.datas[0]]
        return dict(sigma=book.sigma, A=book.A, kappa=book.kappa, bar_seconds=book.bar_seconds)

