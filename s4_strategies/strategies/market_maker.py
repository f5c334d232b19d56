"""Avellaneda–Stoikov market making with inventory control, sessions and a trend lean.

``AvellanedaStoikovStrategy`` quotes a bid and an ask on every data feed, refreshing them on
every bar or tick (cancel-and-replace when a quote moves, as a live quoter does: one working
order per side, the replacement sent once the cancel is confirmed, see
``strategies.orders.TwoSidedQuoting``; ``requote="aggressive"`` replaces at once). The maths
is in
``s4_strategies.market_making``; units are documented there: **time in seconds**, ``sigma``
in price per √second, ``kappa`` in 1/price, ``A`` in fills per second, inventory ``q`` in
lots (position / ``lot``), ``gamma`` in 1/(price·lot).

Quote on each event, per feed::

    q    = position / lot
    mu   = trend (price/second): EMA slope, or pred_return·mid/trend_horizon from a model
    q'   = q − clip(trend_weight·mu/(gamma·sigma²), ±trend_cap)        # GLFT drift term
    AS:    bid, ask = r ∓ spread/2,  r = mid − q'·gamma·sigma²·tau      (model="as")
    GLFT:  bid = mid − c1 − (q'+½)c2,  ask = mid + c1 − (q'−½)c2        (model="glft")
    linear: bid, ask = mid ∓ half_spread − skew·q'                     (model="linear")
    both quotes move by −q·(inventory_nudge + close_skew·ramp)·half_spread,
    ramp = 1 − (time to close)/close_window in the last close_window seconds of a session,
    else 0 (``session.close_ramp``)
    sizes: lot on the side that reduces |q|, lot·exp(−eta·|q|) on the side that grows it,
    capped so |position| never exceeds max_inventory lots, counting what every working
    order could still fill (live requoting); q is the position the fill reports add up to
    a side whose rounded price would be <= 0 is not quoted (market_making.positive_quotes)

``tau = min(horizon, time to session_close)``: a rolling horizon for 24/7 markets
(``session_close=None``), the classic time to a daily close (``"HH:MM"`` UTC) with
``horizon=inf``, or both (a rolling horizon that shrinks to 0 into the close). With
``flatten_at_close`` quotes are pulled ``flatten_before`` seconds ahead of the close and the
inventory is closed with a market order (taker fee).

``sigma`` (realised volatility of the mid over ``sigma_window`` seconds) and ``A, kappa``
(fill intensity; from trade distances to the mid on tick feeds, from bar excursions on bars)
are re-estimated every ``recalibrate`` seconds over a rolling window unless given, and the
EMA trend is tracked, by one ``market_making.estimation.RollingEstimator`` per feed: plain
code fed the numbers read off the lines, so the strategy itself only reads lines, calls the
estimator and the quote functions, and places / cancels orders (``notify_order`` forgets
orders that are no longer alive).

Parameters are read from ``self.p``. Per instrument overrides,
``instruments={"PERP": dict(lot=0.001, tick=0.1), ...}`` keyed by the feed's name, give that
feed a frozen ``market_making.instrument.InstrumentParams`` that answers the overridden keys
and falls back to ``self.p`` for the rest; feeds without overrides read ``self.p`` itself.
Each feed's values are validated when the strategy is created (``ValueError`` naming the
parameter and the feed; unknown keys and unknown feed names are errors too).

Trend: ``trend="ema"`` (default) the slope of two time-based EMAs of the mid;
``trend=None`` none; ``trend="pred_return"`` (any line name) a predicted return on the feed;
``trend=callable`` a factory called as ``trend(data)`` inside ``__init__`` that returns an
indicator with a ``pred_return`` line (e.g. ``functools.partial(S4Indicator, model=m)``).
A predicted (log) return ``r`` over ``trend_horizon`` seconds (default: the indicator's
``pred_horizon`` bars if it declares one, else one bar) becomes
``mu = (e^r − 1)·mid/trend_horizon``.
"""

from __future__ import annotations

import math

import backtrader as bt

from feeds.bartime import num_to_epoch

from .. import market_making as mm
from ..market_making.estimation import RollingEstimator, drift_from_return
from ..market_making.instrument import instrument_params
from ..market_making.quotes import positive_quotes
from ..market_making.session import close_ramp
from .orders import OrderView, TwoSidedQuoting

__all__ = ["AvellanedaStoikovStrategy"]


def _has_line(data, name: str) -> bool:
    return hasattr(data.lines, name)


class _Book:
    """Per-feed state: the params to read, the estimator, the trend source and live orders."""

    def __init__(self, p, data):
        self.p = p  # the strategy's self.p, or an InstrumentParams over it
        self.tick_feed = _has_line(data, "trade_price")
        self.has_mid = _has_line(data, "mid")
        self.has_bbo = _has_line(data, "bid") and _has_line(data, "ask")
        self.close_s = mm.parse_session_close(p.session_close)
        self.est = RollingEstimator.from_params(p, ticks=self.tick_feed)
        self.seen = 0
        self.bar_seconds = p.bar_seconds
        self.orders = {"bid": None, "ask": None}
        self.flatten = None
        self.indicator = None
        self.pred_line = None  # the line holding a predicted return (trend != "ema")
        self.n_quotes = 0
        self.last = None


class AvellanedaStoikovStrategy(TwoSidedQuoting, bt.Strategy):
    """Two-sided Avellaneda–Stoikov / GLFT quoting (see the module doc for the maths).

    Params (units: seconds, price, lots; every param but ``instruments`` can be overridden
    per feed through ``instruments``; checked when the strategy is created):

    - ``model``: ``"as"`` (finite horizon), ``"glft"`` (infinite horizon, needs ``A``) or
      ``"linear"`` (a constant ``half_spread`` around the mid, moved by ``skew`` price per
      lot of inventory; needs no calibration)
    - ``gamma``: risk aversion, 1/(price·lot); one lot moves the AS reservation price by
      ``gamma·sigma²·tau``. Rule of thumb: ``gamma ≈ s/(kappa·sigma²·tau)`` makes it
      ``s/kappa`` (``s`` half-spreads)
    - ``sigma``, ``A``, ``kappa``: fixed values (> 0), or ``None`` to estimate them from the
      data
    - ``horizon``: the rolling horizon (s); ``tau = min(horizon, time to the close)``
    - ``session_close``: daily close ``"HH:MM"`` UTC, or ``None`` (24/7)
    - ``close_window``, ``close_skew``: in the last ``close_window`` seconds the inventory
      skew grows linearly to ``close_skew`` half-spreads per lot
    - ``flatten_at_close``, ``flatten_before``: pull quotes and flatten before the close
    - ``lot``: base order size (contracts, > 0); ``size_step``: size increment (> 0;
      ``None``: none)
    - ``max_inventory``: hard limit in lots (≥ 0); ``eta``: size decay per lot of inventory
    - ``tick``: price increment (> 0); ``min_spread`` (price) / ``min_spread_bps``: minimum
      width
    - ``trend``, ``trend_fast``, ``trend_slow`` (EMA time constants, s), ``trend_weight``,
      ``trend_cap`` (lots), ``trend_horizon`` (s)
    - ``inventory_nudge``: manual skew toward reducing inventory, half-spreads per lot
    - ``sigma_source``: ``"mid"`` (default) or ``"trade"`` (trade prices on tick feeds,
      closes on bars) for the volatility estimate
    - ``sigma_window``, ``calib_window``, ``recalibrate`` (s); ``min_trades``/``min_bars``
      needed before a calibration is trusted
    - ``requote``: ``"live"`` (one working order per side, replaced once its cancel is
      confirmed, the limit counting worst-case fills in flight) or ``"aggressive"``
      (replaced at once while the cancel is in flight), see ``orders.TwoSidedQuoting``;
      ``requote_threshold``: replace a resting quote when it should move by at least this
      fraction of the half-spread (and at least half a tick); a quote that does not move
      keeps its place in the queue
    - ``post_only``: keep quotes one tick off the opposite best (on bars: off the close),
      and flag orders post-only (``MarketMakingBroker`` rejects them rather than let them
      take liquidity if the book has moved through them by the time they arrive)
    - ``bar_seconds``: bar length (``None``: the shortest spacing of the first bars);
      ``stamp_at_open``: bar timestamps are bar opens (the feeds here), so "now" is the
      stamp plus a bar
    - ``instruments``: ``{feed name: {param: value}}`` per instrument overrides
    """

    params = dict(
        model="as",
        half_spread=None,
        skew=0.0,
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
        requote="live",
        requote_threshold=0.1,
        post_only=True,
        bar_seconds=None,
        stamp_at_open=True,
        instruments=None,
    )

    def __init__(self):
        overrides = dict(self.p.instruments or {})
        self.view = OrderView()
        self._books: dict = {}
        for i, data in enumerate(self.datas):
            name = data._name or f"data{i}"
            book = _Book(instrument_params(self.p, overrides.pop(name, None), name), data)
            self._resolve_trend(book, data, name)
            self._books[data] = book
        if overrides:
            raise ValueError(f"instruments given for unknown feeds: {sorted(overrides)}")

    @staticmethod
    def _resolve_trend(book, data, name):
        """Find the source of a model trend: an indicator built by ``trend(data)`` or a line of
        the feed named by ``trend``."""
        trend = book.p.trend
        if trend is None or trend in ("none", "ema"):
            return
        if callable(trend):
            ind = book.indicator = trend(data)
            book.pred_line = ind.lines.pred_return if _has_line(ind, "pred_return") \
                else ind.lines[0]
        elif isinstance(trend, str) and _has_line(data, trend):
            book.pred_line = getattr(data.lines, trend)
        else:
            raise ValueError(f"trend={trend!r} for {name}: not 'ema', None, a line of the feed "
                             "or a callable returning an indicator")

    # ------------------------------------------------------------------ events
    def start(self):
        for data in self._books:
            self.view.seed(data, self.getposition(data).size)

    def prenext(self):
        self.next()

    def notify_order(self, order):
        self.view.on_report(order)
        book = self._books.get(order.data)
        if book is None or order.alive() or book.p.requote != "aggressive":
            return  # live: the records turn final and are let go when next quoted
        for side, rec in book.orders.items():
            if rec is not None and rec.ref == order.ref:
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
        if book.tick_feed or not book.p.stamp_at_open:
            return t
        if book.p.bar_seconds is None and 1 < len(data) <= 20:
            # the shortest spacing of the first bars (a weekend gap is not a bar)
            gap = t - num_to_epoch(data.datetime[-1])
            if gap > 0:
                book.bar_seconds = min(book.bar_seconds or math.inf, gap)
        return t + (book.bar_seconds or 0.0)

    @staticmethod
    def _mid(data, book) -> float:
        """The feed's mid (its ``mid`` line, else the close); NaN when neither is a finite
        price > 0, and such an event is skipped (not estimated on, not quoted)."""
        if book.has_mid:
            m = data.lines.mid[0]
            if 0.0 < m < math.inf:
                return m
        c = data.close[0]
        return c if 0.0 < c < math.inf else math.nan

    # ------------------------------------------------------------------ estimation
    @staticmethod
    def _observe(data, book, now, mid):
        """Hand this event's numbers to the feed's ``RollingEstimator``."""
        if book.tick_feed:
            book.est.update(now, mid, trade_price=data.lines.trade_price[0],
                            trade_side=data.lines.trade_side[0], bar_seconds=book.bar_seconds)
        else:
            book.est.update(now, mid, high=data.high[0], low=data.low[0], close=data.close[0],
                            bar_seconds=book.bar_seconds)

    @staticmethod
    def _trend(book, mid) -> float:
        """Drift estimate in price per second (0 when unavailable)."""
        p = book.p
        if p.trend is None or p.trend == "none" or p.trend_weight == 0:
            return 0.0
        if p.trend == "ema":
            return book.est.ema_drift()
        horizon = p.trend_horizon
        if horizon is None:
            bars = getattr(book.indicator, "pred_horizon", None) or 1  # in bars, if declared
            horizon = bars * book.bar_seconds if book.bar_seconds else p.trend_slow
        return drift_from_return(book.pred_line[0], mid, horizon)

    # ------------------------------------------------------------------ quoting
    def _quote(self, data, book, now, mid):
        p, est = book.p, book.est
        position = self._known_position(data)
        to_close = mm.time_to_close(now, book.close_s)
        if book.close_s is not None and p.flatten_at_close and to_close <= p.flatten_before:
            self._flatten(data, book, position)
            return
        if not est.ready(p.model):
            return
        q = position / p.lot
        bid, ask, lean = self._model_quotes(book, now, mid, q)
        half = 0.5 * (ask - bid)
        ramp = close_ramp(to_close, p.close_window)  # 0 without a session
        extra = -q * (p.inventory_nudge + p.close_skew * ramp) * half
        bid, ask = self._post_only(data, book, bid + extra, ask + extra)
        min_spread = max(p.min_spread, p.min_spread_bps * 1e-4 * mid)
        # a side that would be <= 0 is not quoted (None) and its resting order is cancelled:
        # no price <= 0 is a price, see market_making.quotes
        bid, ask = positive_quotes(*mm.round_quotes(bid, ask, p.tick, min_spread))
        bid_size, ask_size = mm.quote_sizes(position, p.lot, p.eta, p.max_inventory, p.size_step)
        book.last = dict(bid=bid, ask=ask, bid_size=bid_size, ask_size=ask_size, mid=mid,
                         tau=min(p.horizon, to_close), lean=lean, q=q)
        threshold = max(p.requote_threshold * half, 0.5 * p.tick)
        info = dict(mid=mid, A=est.A, kappa=est.kappa, sigma=est.sigma, post_only=p.post_only)
        self._place(data, book, "bid", bid, bid_size, threshold, info)
        self._place(data, book, "ask", ask, ask_size, threshold, info)

    def _model_quotes(self, book, now, mid, q):
        """Unrounded AS / GLFT / linear quotes around the trend-shifted inventory, and the
        lean (lots)."""
        p, est = book.p, book.est
        gamma, sigma, kappa = p.gamma, est.sigma, est.kappa
        mu = self._trend(book, mid) if sigma is not None else 0.0  # linear: maybe no sigma yet
        lean = p.trend_weight * mm.drift_shift(mu, gamma, sigma) if mu else 0.0
        lean = max(-p.trend_cap, min(p.trend_cap, lean))
        qe = q - lean
        if p.model == "linear":
            bid, ask = mm.linear_quotes(mid, qe, p.half_spread, p.skew)
        elif p.model == "as":
            tau = max(mm.session_tau(now, book.close_s, p.horizon), 1e-3)
            bid, ask = mm.as_quotes(mid, qe, gamma, sigma, tau, kappa)
        else:
            bid, ask = mm.glft_quotes(mid, qe, gamma, sigma, est.A, kappa)
        return bid, ask, lean

    @staticmethod
    def _post_only(data, book, bid, ask):
        """Keep post-only quotes one tick off the opposite best: the BBO when the feed has one,
        else the last price (bars: the close stands for both sides of the book)."""
        if not book.p.post_only:
            return bid, ask
        if book.has_bbo:
            best_bid, best_ask = data.lines.bid[0], data.lines.ask[0]
        else:
            best_bid = best_ask = data.close[0]
        if math.isfinite(best_ask):
            bid = min(bid, best_ask - book.p.tick)
        if math.isfinite(best_bid):
            ask = max(ask, best_bid + book.p.tick)
        return bid, ask

    # ------------------------------------------------------------------ inspection
    def inventory_limit(self, data=None) -> float:
        """The hard inventory limit of a feed in contracts (``max_inventory·lot``; inf for
        none). Live requoting never passes it; with ``requote="aggressive"`` fills in
        flight on cancelled orders can overshoot it."""
        p = self._books[data if data is not None else self.datas[0]].p
        return p.max_inventory * p.lot

    def quotes(self, data=None) -> dict | None:
        """The last quote computed for a feed: ``bid, ask, bid_size, ask_size, mid, tau,
        lean`` (lots of drift shift) and ``q``; ``None`` before the first quote. ``bid`` or
        ``ask`` is ``None`` when that side would have been <= 0 (not quoted)."""
        return self._books[data if data is not None else self.datas[0]].last

    def calibration(self, data=None) -> dict:
        """Current ``sigma, A, kappa`` (and bar length) of a feed (the first by default)."""
        book = self._books[data if data is not None else self.datas[0]]
        return dict(**book.est.estimates(), bar_seconds=book.bar_seconds)

