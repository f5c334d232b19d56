"""``S4DirectionalStrategy``: trade one instrument on the S4 indicator's signal."""

from __future__ import annotations

import bisect
import math
from collections import deque

import backtrader as bt

from ..fees import apply_fees, target_size
from ..indicators import S4Indicator


class S4DirectionalStrategy(bt.Strategy):
    """Long/short (or long-only) on the model's forecast, after costs.

    The default rule is the one ``s4trade compare`` measures: the cost-aware band the
    checkpoint carries (``meta["decision"]``, chosen on its validation period by net Sharpe
    after the taker fee and funding). Long when the predicted log return over the signal
    horizon (the indicator's ``pred_move``) exceeds ``enter``, held while it stays above
    ``exit``; short symmetrically; flat in between (``s4_strategies.rules.BandRule``).

    Params:
      - ``model``: checkpoint path or loaded model (``s4_strategies.load_model``)
      - ``indicator``: extra keyword arguments for :class:`S4Indicator` (``reset_time``, …)
      - ``rule``: ``"auto"`` (the checkpoint's band if it has one, else ``"argmax"``),
        ``"band"`` or ``"argmax"`` (the most likely class every bar, sized by confidence)
      - ``band``: ``dict(enter=..., exit=...)`` (log returns) to override the checkpoint's
      - ``conf_threshold``: argmax rule: minimum probability of the predicted class
      - ``max_position``: fraction of portfolio value at full size (e.g. 0.95)
      - ``vol_target``: per-bar volatility the position is scaled to (``None``: no scaling)
      - ``regime_window`` / ``regime_quantile``: stand aside while the predicted volatility is
        above this trailing quantile of its own history (``None``: off)
      - ``stop_loss`` / ``take_profit``: fractions of the entry price, placed as real stop and
        limit orders, so they trigger on the bar's low/high (not its close); ``None``: off
      - ``long_only``: never short
      - ``min_change``: smallest change of the target weight (against the last one ordered)
        worth trading; exits always go through (fees are real)
      - ``cooldown``: bars to stay out after a stop or take-profit fills
      - ``fees``: ``"bybit"`` charges Bybit's taker fee at start, but only where the broker
        still has backtrader's default commission: one you set yourself is kept (both are
        logged). ``None``: leave the broker as it is.

    Sizes are fractional (``fees.target_size``) whatever the commission scheme.

    Subclass hooks: :meth:`band_to_target`, :meth:`signal_to_target` and :meth:`risk_filter`.

    Restarts: :meth:`get_state`/:meth:`set_state` carry what the strategy remembers between
    bars as plain data; ``s4_strategies.live.StateSaver`` saves it with the indicator's state
    after every bar and restores both at start (the convention for any strategy: one that
    has ``get_state``/``set_state`` gets its state saved and restored). Orders are not part
    of it: open orders and the position belong to the broker. An exchange's broker
    (``feeds.BybitStore(...).getbroker()``) then tells :meth:`notify_reconcile` what the
    account holds before the first bar, and again whenever it had to take a position from
    the exchange; the strategy checks it against what it last aimed at.
    """

    params = dict(
        model=None,
        indicator=None,
        rule="auto",
        band=None,
        conf_threshold=0.45,
        max_position=0.95,
        vol_target=None,
        regime_window=24 * 30,
        regime_quantile=None,
        stop_loss=None,
        take_profit=None,
        long_only=False,
        min_change=0.05,
        cooldown=0,
        fees="bybit",
    )

    def __init__(self):
        self.s4 = S4Indicator(self.data, model=self.p.model, **(self.p.indicator or {}))
        self._vols = deque()  # predicted volatility, oldest first (regime filter)
        self._sorted_vols = []  # the same values, sorted
        self._half = (self.s4.predictor.label_spec.n_classes // 2) or 1
        self._target = 0.0  # the weight last ordered (None: unknown, read the position)
        self._aim = 0.0  # the position (units) that order aimed at
        self._exits = []
        self._entry = None
        self._cool = 0
        self._pending = None
        self.stopped_out = 0
        self.band = self._band_rule()
        self._side = 0  # the band rule's position: -1, 0, 1

    def _band_rule(self):
        """The BandRule this run trades, or None for the argmax rule."""
        from ..rules import BandRule

        rule = self.p.rule
        if rule not in ("auto", "band", "argmax"):
            raise ValueError(f"rule must be 'auto', 'band' or 'argmax', got {rule!r}")
        if rule == "argmax":
            return None
        band = self.p.band or self.s4.predictor.meta.get("decision")
        if band is None:
            if rule == "band":
                raise ValueError("rule='band' needs band=dict(enter=..., exit=...) or a "
                                 "checkpoint that carries one (trained by this version)")
            return None
        return BandRule(float(band["enter"]), float(band["exit"]), long_only=self.p.long_only)

    def start(self):
        apply_fees(self.broker, self.datas, self.p.fees)

    # -- state across restarts ----------------------------------------------------------
    def get_state(self) -> dict:
        """What the strategy carries between bars, as plain data (no orders)."""
        return {"vols": list(self._vols), "target": self._target, "side": self._side,
                "cool": self._cool, "entry": self._entry, "stopped_out": self.stopped_out,
                "aim": self._aim}

    def set_state(self, state: dict) -> None:
        """Continue from :meth:`get_state` (before the first bar). ``ValueError`` naming the
        field for a value that cannot be (a NaN, a side outside -1..1); nothing is set then."""
        def num(key, optional=False, low=-math.inf):
            v = state.get(key) if optional else state[key]
            if v is None and optional:
                return None
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v < low:
                raise ValueError(f"{type(self).__name__} state: {key} is {v!r}, not a finite "
                                 f"number{f' >= {low:g}' if low > -math.inf else ''}")
            return float(v)

        vols = deque(float(v) for v in state["vols"])
        if not all(math.isfinite(v) and v >= 0 for v in vols):
            raise ValueError(f"{type(self).__name__} state: vols holds a value that is not a "
                             "finite number >= 0")
        target, aim = num("target", optional=True), num("aim", optional=True)
        side, cool = num("side"), num("cool", low=0)
        entry, stopped = num("entry", optional=True), num("stopped_out", low=0)
        if side not in (-1.0, 0.0, 1.0):
            raise ValueError(f"{type(self).__name__} state: side is {side:g}, not -1, 0 or 1")
        while len(vols) > self.p.regime_window:
            vols.popleft()
        self._vols, self._sorted_vols = vols, sorted(vols)
        self._target, self._aim = target, aim
        self._side, self._cool = int(side), int(cool)
        self._entry, self.stopped_out = entry, int(stopped)

    def notify_reconcile(self, data, position, open_orders) -> None:
        """The account as an exchange's broker found it (before the first bar, after a
        restart, after a position taken from the exchange). Open market orders of ours are
        the pending entry (one already decided: wait for it); open stop/limit orders are the
        protective exits when ``stop_loss``/``take_profit`` are set, else cancelled. When the
        position plus what is pending differs from the position last aimed at by a weight of
        ``min_change`` or more, the last ordered weight is forgotten: the next decision
        orders the difference from the real position (what a crash left undone)."""
        if data is not self.data:
            return
        pending = [o for o in open_orders if o.exectype == bt.Order.Market]
        exits = [o for o in open_orders if o.exectype != bt.Order.Market]
        self._pending = pending[-1] if pending else None
        for o in pending[:-1]:
            self.cancel(o)
        if self.p.stop_loss is None and self.p.take_profit is None:
            for o in exits:
                self.cancel(o)
            exits = []
        self._exits = exits
        expected = position.size + sum(o.executed.remsize for o in pending[-1:])
        value, close = self.broker.getvalue(), self.data.close[0] if len(self.data) else 0.0
        off = (math.inf if self._aim is None or not value or close != close
               else abs(expected - self._aim) * close / value)
        if off >= self.p.min_change:
            self._target = None

    # -- hooks ---------------------------------------------------------------------------
    def band_to_target(self, side: int, pred_move: float, pred_vol: float) -> float:
        """Band rule: target weight for the side (-1, 0, 1) the band chose this bar."""
        size = self.p.max_position * side
        if self.p.vol_target and pred_vol > 0:
            size *= min(1.0, self.p.vol_target / pred_vol)
        return size

    def signal_to_target(self, signal: float, confidence: float, pred_vol: float) -> float:
        """Target weight (fraction of portfolio value, signed) for this bar's prediction."""
        if confidence < self.p.conf_threshold or signal == 0:
            return 0.0
        size = self.p.max_position * min(abs(signal) / self._half, 1.0) * confidence
        if self.p.vol_target and pred_vol > 0:
            size *= min(1.0, self.p.vol_target / pred_vol)
        return math.copysign(size, signal)

    def risk_filter(self, signal: float, confidence: float, pred_vol: float) -> bool:
        """False to stand aside. Default: the volatility regime filter (predicted volatility
        above the ``regime_quantile`` of its last ``regime_window`` values)."""
        if self.p.regime_quantile is None:
            return True
        vols = self._sorted_vols
        if len(vols) < max(10, self.p.regime_window // 4):
            return True
        cut = vols[min(len(vols) - 1, int(self.p.regime_quantile * len(vols)))]
        return pred_vol <= cut

    def _remember_vol(self, vol: float) -> None:
        self._vols.append(vol)
        bisect.insort(self._sorted_vols, vol)
        if len(self._vols) > self.p.regime_window:
            old = self._vols.popleft()
            del self._sorted_vols[bisect.bisect_left(self._sorted_vols, old)]

    # -- trading -------------------------------------------------------------------------
    def next(self):
        s4 = self.s4
        sig = s4.signal[0]
        if sig != sig:  # NaN: warming up again after a state reset (reset_time/reset_gap)
            return
        self._protect()
        conf, vol = s4.confidence[0], s4.pred_vol[0]
        allowed = self.risk_filter(sig, conf, vol)
        if self.p.regime_quantile is not None:
            self._remember_vol(vol)
        if self._cool > 0:
            self._cool -= 1
            return
        if self.band is not None:
            self._side = self.band.step(s4.pred_move[0], self._side) if allowed else 0
            target = self.band_to_target(self._side, s4.pred_move[0], vol)
        else:
            target = self.signal_to_target(sig, conf, vol) if allowed else 0.0
        if self.p.long_only and target < 0.0:
            target = 0.0
        if self._pending is not None and self._pending.alive():
            return
        last = self._target
        if last is None:  # after a reconciliation: the weight the position has now
            value = self.broker.getvalue()
            last = self.position.size * self.data.close[0] / value if value else 0.0
            self._target, self._aim = last, self.position.size
        # Trade when the target moved by min_change (fees are real); always allow an exit.
        if abs(target - last) < self.p.min_change and not (target == 0.0 and last != 0.0):
            return
        self._cancel_exits()
        aim = target_size(self.broker, self.data, target)
        self._pending = self.order_target_size(target=aim)
        self._target, self._aim = target, aim

    def _cancel_exits(self):
        for o in self._exits:
            if o.alive():
                self.cancel(o)
        self._exits = []

    def notify_order(self, order):
        if order.status != order.Completed:
            return
        if order in self._exits:
            self.stopped_out += 1
            self._cancel_exits()
            self._cool = self.p.cooldown
            self._target = self._aim = 0.0
            self._side = 0
            return
        if self.position.size == 0 or (self.p.stop_loss is None and self.p.take_profit is None):
            return
        self._place_exits()

    def _protect(self):
        """A position without its stop/target working gets them again (after a restart: the
        saved state holds no orders, and the exchange's old ones were cancelled at start)."""
        if (self.p.stop_loss is None and self.p.take_profit is None) or not self.position.size:
            return
        if any(o.alive() for o in self._exits):
            return
        if self._pending is not None and self._pending.alive():
            return  # its fill places them
        self._place_exits()

    def _place_exits(self):
        """Stop and target for the whole position, from its average entry price."""
        self._cancel_exits()
        pos = self.position
        size, price = abs(pos.size), pos.price
        long = pos.size > 0
        close = self.sell if long else self.buy
        sl, tp = self.p.stop_loss, self.p.take_profit
        stop = lim = None
        if sl is not None:
            stop = close(exectype=bt.Order.Stop, size=size,
                         price=price * (1 - sl) if long else price * (1 + sl))
        if tp is not None:
            lim = close(exectype=bt.Order.Limit, size=size, oco=stop,
                        price=price * (1 + tp) if long else price * (1 - tp))
        self._exits = [o for o in (stop, lim) if o is not None]
