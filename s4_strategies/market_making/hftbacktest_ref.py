"""A reference run of one simple quoting rule in hftbacktest, to cross-check
``MarketMakingBroker`` (hftbacktest is a dev dependency, imported only when used).

Both engines see the same events: :func:`hftbacktest_events` turns a merged tick frame from
``feeds.ticks.load_ticks`` into hftbacktest's event array, and :func:`run_hftbacktest` quotes
with :func:`constant_spread_quotes`, the rule ``ConstantSpreadStrategy`` uses in backtrader,
once per event, with the same latency and fees. ``scripts/crosscheck_hftbacktest.py`` runs
both and prints them side by side.

What hftbacktest 2.4.4 needs done here, and why:

- The book is fed as ``DEPTH_EVENT`` level updates, not ``DEPTH_BBO_EVENT``: the 2.4.4
  backtester ignores BBO events (its book stays empty). A BBO feed shows the best level
  only; hftbacktest's queue models assume a full book. Levels behind the best are therefore
  shown with :data:`HIDDEN_QTY` (more than any queue), which makes an order joining there
  wait behind an unknown queue that its model cuts to the displayed size once the level is
  the best, as our broker does; without it such an order would join at the front (an
  empty level) or behind a stale size, and fill where ours cannot. Levels better than a
  falling best are deleted (qty 0: an order resting there is now first, in both engines).
  The side that moves away is updated first, so the book is never crossed in between.
- The position, PnL and fees are counted here from each order's executions, not read from
  ``hbt.position``/``state_values``: 2.4.4's local state books only the last piece of an
  order filled in several pieces.
- Orders are sent a hair (1e-9 relative) under their size: in 2.4.4 a queue fill of exactly
  the size left marks the order filled but leaves it in the book, and the next trade at its
  price stops the backtest (error 14); executions are rounded back to lots.
- Order responses come back with no delay (response latency 0): our broker reports a fill
  on the event that made it. Cancels travel with the entry latency (hftbacktest has one
  order latency for both), so ``latency.entry`` must equal ``latency.cancel``.
- Rows sharing a stamp (the USD-M sample is on the matching engine's ms clock) are spread
  1 ns apart, so hftbacktest wakes the strategy on every row as backtrader does; and a
  request that reaches the book at an event's stamp goes before that event, as in our broker
  (hftbacktest processes market data first on a tie), by arriving that hair earlier.
- hftbacktest cannot cancel an order whose placement is still in flight (``req`` not
  NONE): the rule then tries again on the next event (``ConstantSpreadStrategy`` does the
  same with ``cancel_in_flight=False``, which the cross-check uses).

Agreement (USD-M sample, half-spread 0.5, skew 0.1/lot, lot 0.01, 10 lots, Bybit fees,
``cancel_in_flight=False``; ``python scripts/crosscheck_hftbacktest.py``, the table in the
README). Under the risk-averse queue the two engines agree exactly at 0, 1, 10 and 50 ms:
every fill, quote and PnL figure. Under the probabilistic queue fills agree within 1.6 %,
quotes within 0.3 %, fees and total PnL within 1.1 %, spread PnL within 0.05 USD and
inventory PnL within 1.5 USD (of 1.5-6 and 18-65 USD). The band the tests hold
(``tests/test_hftbacktest_crosscheck.py``, the first 120 s at 10 ms under the probabilistic
queue, where the two engines make the same 131 fills and 628 quotes) is 2 % on fills,
quotes, fill ratio, fees and total PnL and 0.25 USD on spread and inventory PnL. Why not
zero under the probabilistic queue:

- the queue estimate (the likely cause, not traced fill by fill): ours clips the expected
  size ahead at zero and updates it only from changes of the best level it rests at, so a
  few orders may reach the front a print earlier or later than in hftbacktest;
- path dependence: one fill that differs moves the inventory by a lot and every later quote
  by the skew, so the runs part for a while and totals differ by more than the fills at
  fault.

The first version of our broker filled about 2.5x as many orders as hftbacktest at 10 ms:
it had no latency and joined the queue as it stood when an order was sent.

Units: prices in quote currency, sizes in contracts (BTC), times in seconds unless named
``_ns`` (nanoseconds, hftbacktest's clock).
"""

from __future__ import annotations

import math

import numpy as np

from .latency import parse_latency

__all__ = ["HIDDEN_QTY", "HIDDEN_TICKS", "QUEUE_MODELS", "constant_spread_quotes",
           "hftbacktest_events", "run_hftbacktest", "unique_stamps"]

QUEUE_MODELS = ("prob", "risk_averse")
_INSTALL = ("hftbacktest is needed for the cross-check: pip install hftbacktest "
            "(a dev dependency, tested with 2.4.4)")


def _hbt():
    try:
        import hftbacktest
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(_INSTALL) from exc
    return hftbacktest


def constant_spread_quotes(mid: float, best_bid: float, best_ask: float, position: float, *,
                           half_spread: float, skew: float, lot: float, tick: float,
                           max_inventory: float, post_only: bool = True):
    """The constant-spread-plus-skew rule: ``(bid_tick, ask_tick)``, integers (price =
    ``tick × k``), ``None`` for a side not quoted.

    ``q = position/lot``; bid ``floor((mid − half_spread − skew·q)/tick)``, ask
    ``ceil((mid + half_spread − skew·q)/tick)``; post-only keeps the bid at least a tick
    under ``best_ask`` and the ask a tick over ``best_bid``. A side whose order (``lot``)
    would take ``|q|`` past ``max_inventory`` lots is not quoted. ``half_spread``, ``tick``:
    price; ``skew``: price per lot; ``lot``, ``position``: contracts.
    """
    q = position / lot
    eps = 1e-9  # float noise: 61800.0/0.1 is 617999.99999...
    bid = math.floor((mid - half_spread - skew * q) / tick + eps)
    ask = math.ceil((mid + half_spread - skew * q) / tick - eps)
    if post_only:
        bid = min(bid, round(best_ask / tick) - 1)
        ask = max(ask, round(best_bid / tick) + 1)
    if q + 1.0 > max_inventory + eps:
        bid = None
    if q - 1.0 < -max_inventory - eps:
        ask = None
    return bid, ask


#: contracts shown at a level a BBO feed hides (deeper than the best): more than any queue
HIDDEN_QTY = 1e6
#: how many ticks behind the best each side is shown hidden
HIDDEN_TICKS = 1000


def _book_side(side: dict, new: int, qty: float, buy: bool, flag: int) -> list:
    """Level updates ``(flag, px_tick, qty)`` that make ``new`` (ticks) the best of one side
    of the book, shown ``qty``. ``side`` holds the side's ``best`` and ``deep`` (the deepest
    tick shown hidden) and is updated. When the best gets worse the levels between are
    deleted; when it gets better the old best and the levels between are hidden, as are
    levels newly within :data:`HIDDEN_TICKS` behind the best."""
    out = []
    step = -1 if buy else 1  # one tick away from the other side
    old = side["best"]
    if old is not None and (new < old if buy else new > old):
        out += [(flag, t, 0.0) for t in range(old, new, step)]  # emptied: better than new
    out.append((flag, new, qty))
    if old is not None and (new > old if buy else new < old):
        out += [(flag, t, HIDDEN_QTY) for t in range(new + step, old + step, step)]
    deep = new + step * HIDDEN_TICKS
    start = new + step if side["deep"] is None else side["deep"]
    if (deep < start) if buy else (deep > start):
        out += [(flag, t, HIDDEN_QTY) for t in range(start, deep + step, step)
                if t != side["deep"]]
        side["deep"] = deep
    side["best"] = new
    return out


def unique_stamps(frame) -> np.ndarray:
    """The frame's stamps in ns, made strictly increasing by pushing each repeat 1 ns past the
    one before (hftbacktest hands the strategy all events of one timestamp at once; our
    strategy sees every row). Shape ``(len(frame),)``, int64 ns."""
    stamp = frame.index.as_unit("ns").asi8
    step = np.arange(len(stamp), dtype=np.int64)
    return np.maximum.accumulate(stamp - step) + step


def hftbacktest_events(frame, feed_latency: float = 0.0, tick: float = 0.1) -> np.ndarray:
    """hftbacktest ``event_dtype`` array of a merged tick frame (``feeds.ticks``).

    ``frame``: DatetimeIndex (UTC), ``bid, ask, bid_size, ask_size`` and optional
    ``trade_price, trade_size, trade_side`` (+1 buy / −1 sell aggressor). Per row, in the
    frame's order: a trade becomes ``TRADE_EVENT`` (``BUY_EVENT``/``SELL_EVENT`` by aggressor,
    ``px = trade_price``, ``qty = trade_size``); then, where the BBO changed, ``DEPTH_EVENT``
    updates of the bid (``BUY_EVENT``) and ask (``SELL_EVENT``) sides (see the module doc).
    A row with neither, and one more after the last row, repeat the best bid as a
    ``LOCAL_EVENT`` only (the exchange ignores it): hftbacktest wakes the strategy only on
    events and ends the data on the last one, and ``ConstantSpreadStrategy`` acts on every
    row. The others are ``EXCH_EVENT | LOCAL_EVENT`` with ``exch_ts`` the row's stamp in ns
    (:func:`unique_stamps`: rows sharing a stamp are 1 ns apart) and ``local_ts = exch_ts +
    feed_latency`` (seconds) in ns. ``tick``: price increment.
    """
    hb = _hbt()
    base = hb.EXCH_EVENT | hb.LOCAL_EVENT
    stamp = unique_stamps(frame)  # (n,) ns
    lat_ns = int(round(feed_latency * 1e9))
    cols = [frame[c].to_numpy(float) for c in ("bid", "ask", "bid_size", "ask_size")]
    n = len(frame)
    nan = np.full(n, np.nan)
    tp, tq, ts = (frame[c].to_numpy(float) if c in frame else nan
                  for c in ("trade_price", "trade_size", "trade_side"))
    trade = np.isfinite(tp) & (np.nan_to_num(tq) > 0)
    if (trade & ~np.isin(ts, (-1.0, 1.0))).any():
        raise ValueError("hftbacktest_events: trades need an aggressor side (trade_side ±1)")
    bid_f, ask_f = base | hb.DEPTH_EVENT | hb.BUY_EVENT, base | hb.DEPTH_EVENT | hb.SELL_EVENT
    wake = hb.LOCAL_EVENT | hb.DEPTH_EVENT | hb.BUY_EVENT  # the best bid again, local only
    rows = []  # (ev, exch_ts, px_tick or px, qty, is_tick)
    bids, asks = {"best": None, "deep": None}, {"best": None, "deep": None}
    prev = (None, None, None, None)
    for i in range(n):
        if trade[i]:
            side = hb.BUY_EVENT if ts[i] > 0 else hb.SELL_EVENT
            rows.append((base | hb.TRADE_EVENT | side, stamp[i], tp[i], tq[i], False))
        b, a, bs, as_ = (c[i] for c in cols)
        bt_, at_ = round(b / tick), round(a / tick)
        ev_b = _book_side(bids, bt_, bs, True, bid_f) if (bt_, bs) != prev[:2] else []
        ev_a = _book_side(asks, at_, as_, False, ask_f) if (at_, as_) != prev[2:] else []
        falling = prev[0] is not None and bt_ < prev[0]
        for flag, t, q in (ev_b + ev_a if falling else ev_a + ev_b):
            rows.append((flag, stamp[i], t, q, True))
        if not (trade[i] or ev_a or ev_b):  # nothing new: only wake the strategy
            rows.append((wake, stamp[i], bt_, bs, True))
        prev = (bt_, bs, at_, as_)
    if n:  # after the last row, so that the strategy acts on it (hftbacktest ends the data
        rows.append((wake, stamp[-1] + 1, prev[0], prev[1], True))  # on its last event)
    out = np.zeros(len(rows), dtype=hb.event_dtype)
    if rows:
        ev, exch, px, qty, is_tick = (np.asarray(x) for x in zip(*rows))
        out["ev"] = ev.astype(np.uint64)
        out["exch_ts"] = exch
        out["local_ts"] = exch + lat_ns
        out["px"] = np.where(is_tick, px * tick, px)
        out["qty"] = qty
    return out


def _asset(hb, events, entry_ns: int, queue: str, queue_power: float, partial: bool,
           maker: float, taker: float, tick: float, lot_size: float):
    """The hftbacktest asset: linear, constant order latency (``entry_ns``, response 0), the
    queue and exchange models, fees as fractions of traded value."""
    asset = (hb.BacktestAsset().data([events]).linear_asset(1.0)
             .constant_order_latency(entry_ns, 0))
    asset = (asset.power_prob_queue_model(queue_power) if queue == "prob"
             else asset.risk_adverse_queue_model())
    asset = asset.partial_fill_exchange() if partial else asset.no_partial_fill_exchange()
    return asset.trading_value_fee_model(maker, taker).tick_size(tick).lot_size(lot_size)


#: orders are sent this much (relative) under their size: a queue fill of exactly the size
#: left leaves the order in hftbacktest 2.4.4's book, which then fails (code 14) on the next
#: trade at its price; a hair less takes its other path. Executions are rounded back to lots.
_SHAVE = 1e-9


class _Orders:
    """The orders the rule sent: per order its side, send time and what is left, and every
    execution ``(t_ns, sign, price, qty, sent_ns)``, read off hftbacktest's local orders."""

    def __init__(self, hb, hbt, tick: float, lot_size: float):
        self.hb, self.hbt, self.tick, self.lot_size = hb, hbt, tick, lot_size
        self.meta = {}                       # oid -> [sign, sent_ns, leaves]
        self.live = {1: None, -1: None}      # side -> oid the rule manages
        self.sent = {1: 0, -1: 0}
        self.filled_ids = set()
        self.rejected = 0
        self.fills = []
        self.position = 0.0                  # contracts
        self.next_id = 1

    def collect(self):
        """Book the executions since the last call; forget orders that are done."""
        hb, orders = self.hb, self.hbt.orders(0)
        for oid in list(self.meta):
            sign, sent, leaves = self.meta[oid]
            o = orders.get(oid)
            if o is None:
                del self.meta[oid]
                continue
            left = o.leaves_qty
            if left < leaves - 0.5 * self.lot_size:
                qty = round((leaves - left) / self.lot_size) * self.lot_size  # undo _SHAVE
                self.fills.append((o.exch_timestamp, sign, o.price_tick * self.tick, qty, sent))
                self.position += sign * qty
                self.filled_ids.add(oid)
                self.meta[oid][2] = left
            if o.status in (hb.FILLED, hb.CANCELED, hb.EXPIRED):
                self.rejected += o.status == hb.EXPIRED
                del self.meta[oid]
                if self.live[sign] == oid:
                    self.live[sign] = None

    def requote(self, sign: int, k, size: float):
        """Cancel-and-replace the ``sign`` side (+1 bid, −1 ask) to ``k`` ticks (``None``: no
        order). An order whose placement is in flight cannot be cancelled yet: next event."""
        hb, hbt = self.hb, self.hbt
        oid = self.live[sign]
        if oid is not None:
            o = hbt.orders(0).get(oid)
            if o is not None and k is not None and o.price_tick == k:
                return
            if o is not None and o.req == hb.NEW:
                return
            if o is not None and o.req == hb.NONE:
                hbt.cancel(0, oid, False)  # in flight: it may still fill (collect sees it)
            self.live[sign] = None
        if k is None:
            return
        oid, self.next_id = self.next_id, self.next_id + 1
        submit = hbt.submit_buy_order if sign > 0 else hbt.submit_sell_order
        qty = size * (1.0 - _SHAVE)
        code = submit(0, oid, k * self.tick, qty, hb.GTX, hb.LIMIT, False)
        if code != 0:
            raise RuntimeError(f"hftbacktest refused order {oid}: code {code}")
        self.meta[oid] = [sign, hbt.current_timestamp, qty]
        self.live[sign] = oid
        self.sent[sign] += 1


def _summary(book: _Orders, stamp: np.ndarray, mid: np.ndarray, maker: float) -> dict:
    """Fills, fill ratio and the PnL split of ``MarketMakingAnalyzer`` from the executions:
    spread PnL marks each fill to the mid before the event it happened on."""
    cols = list(zip(*book.fills)) or [()] * 5
    t, sent = (np.asarray(c, dtype=np.int64) for c in (cols[0], cols[4]))  # ns, exact
    sign, price, qty = (np.asarray(c, dtype=float) for c in cols[1:4])
    before = mid[np.clip(np.searchsorted(stamp, t, "left") - 1, 0, len(mid) - 1)]
    fees = float(np.sum(maker * price * qty))  # post-only (GTX): every fill is a maker fill
    total = float(-np.sum(sign * price * qty) + book.position * mid[-1]) - fees
    spread = float(np.sum(sign * (before - price) * qty))
    n_sent = book.sent[1] + book.sent[-1]
    delay = (t - sent) / 1e9
    return {
        "fills_bid": int(np.sum(sign > 0)), "fills_ask": int(np.sum(sign < 0)),
        "volume_bid": float(qty[sign > 0].sum()), "volume_ask": float(qty[sign < 0].sum()),
        "quotes_bid": book.sent[1], "quotes_ask": book.sent[-1],
        "quotes_rejected": int(book.rejected),
        "fill_ratio": len(book.filled_ids) / n_sent if n_sent else float("nan"),
        "spread_pnl": spread, "inventory_pnl": total + fees - spread, "fees": fees,
        "total_pnl": total, "final_position": book.position,
        "median_fill_delay": float(np.median(delay)) if len(delay) else float("nan"),
        "fill_log": [dict(t=ti / 1e9, sign=int(s), price=p, size=q, placed=se / 1e9)
                     for ti, s, p, q, se in zip(t, sign, price, qty, sent)],
    }


def run_hftbacktest(frame, *, half_spread: float, skew: float, lot: float, max_inventory: float,
                    latency=None, tick: float = 0.1, lot_size: float = 0.001,
                    queue: str = "prob", queue_power: float = 3.0, partial: bool = True,
                    maker: float, taker: float) -> dict:
    """Quote :func:`constant_spread_quotes` (post-only) in hftbacktest on ``frame`` (a merged
    tick frame), acting once per event like ``ConstantSpreadStrategy``.

    ``latency``: anything :func:`parse_latency` takes, with ``entry == cancel`` (seconds);
    ``queue``: ``"prob"`` (``PowerProbQueueFunc(queue_power)``) or ``"risk_averse"``;
    ``partial``: partial fills; ``maker``/``taker``: fractions of traded value; ``tick``:
    price increment; ``lot_size``: size increment (contracts).

    Returns ``fills_bid, fills_ask`` (executions), ``volume_bid, volume_ask`` (contracts),
    ``quotes_bid, quotes_ask`` (orders sent), ``quotes_rejected`` (post-only orders expired
    on arrival), ``fill_ratio`` (orders with a fill / orders sent), ``spread_pnl,
    inventory_pnl, fees, total_pnl`` (quote currency, marked to the last mid),
    ``final_position`` (contracts), ``median_fill_delay`` (seconds from sending an order to
    each of its executions) and ``fill_log`` (per execution: ``t``, ``placed`` epoch
    seconds, ``sign``, ``price``, ``size``).
    """
    if queue not in QUEUE_MODELS:
        raise ValueError(f"queue must be one of {QUEUE_MODELS}, got {queue!r}")
    latency = parse_latency(0.0 if latency is None else latency)
    if not math.isclose(latency.entry, latency.cancel, abs_tol=1e-12):
        raise ValueError("hftbacktest has one order latency: latency.entry must equal "
                         f"latency.cancel, got {latency.ms()}")
    hb = _hbt()
    stamp = unique_stamps(frame)  # (n,) ns
    events = hftbacktest_events(frame, latency.feed, tick)  # kept alive: hftbacktest reads it
    # ties: a request arriving at an event's stamp goes first (our broker's rule); hftbacktest
    # puts market data first, so arrive a hair (past the 1 ns repeats) before
    entry_ns = int(round(latency.entry * 1e9))
    if entry_ns > 0:
        entry_ns = max(entry_ns - int((stamp - frame.index.as_unit("ns").asi8).max()) - 1, 0)
    hbt = hb.HashMapMarketDepthBacktest([_asset(hb, events, entry_ns, queue, queue_power,
                                                partial, maker, taker, tick, lot_size)])
    book = _Orders(hb, hbt, tick, lot_size)
    rule = dict(half_spread=half_spread, skew=skew, lot=lot, tick=tick,
                max_inventory=max_inventory, post_only=True)
    while True:
        code = hbt.wait_next_feed(False, 60_000_000_000)  # a minute without events: go on
        if code not in (0, 1, 2):
            raise RuntimeError(f"hftbacktest stopped with error code {code} at "
                               f"{hbt.current_timestamp} ns")
        book.collect()
        if code == 1:
            break  # the wake-up event after the last row: the end of the data
        if code == 0:
            continue
        depth = hbt.depth(0)
        best_bid, best_ask = depth.best_bid, depth.best_ask
        if not (math.isfinite(best_bid) and math.isfinite(best_ask)):
            continue
        bid, ask = constant_spread_quotes(0.5 * (best_bid + best_ask), best_bid, best_ask,
                                          book.position, **rule)
        book.requote(1, bid, lot)
        book.requote(-1, ask, lot)
        hbt.clear_inactive_orders(0)
    hbt.close()
    mid = 0.5 * (frame["bid"].to_numpy(float) + frame["ask"].to_numpy(float))
    return _summary(book, stamp, mid, maker)
