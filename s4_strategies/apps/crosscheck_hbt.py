"""The hftbacktest side of the market maker's cross-check (dev tooling: hftbacktest is a dev
dependency, imported only here). Nothing of ours is shared with it but the recorded files.

**Data.** :func:`recorded_events` reads the embedded recordings as they are in the files
(``feeds/data``: Binance bookTicker and trade streams, see ``feeds/data/SOURCES.md``),
writes them in the layout of Tardis's ``trades`` and ``book_ticker`` CSVs and converts them
with hftbacktest's own converter, ``hftbacktest.data.utils.tardis.convert_fuse``: its
``FuseMarketDepth`` turns each book ticker into depth updates of the best levels (a best that
worsens deletes the levels now better than it; levels behind the best keep what was last
shown there: no hidden depth is invented), trades come first on a tie, and
``correct_local_timestamp`` / ``correct_event_order`` make the recorder's receive times a feed
latency (the recorder's clock ran 1.27 s behind the exchange's: hftbacktest shifts it so the
smallest latency is 0; on the USD-M sample the median is then 3.5 ms, the 90th percentile
17 ms). USD-M streams carry the matching engine's time ``T``; spot bookTicker has none, so
the spot sample runs on the receive clock (trades too) with no feed latency.

**Rule.** :func:`run_reference` quotes the constant-spread rule once per feed event
(``wait_next_feed``), written here apart from ``AvellanedaStoikovStrategy``: with ``q`` the
position the order responses add up to, in lots, ``bid = mid − half_spread − skew·q``, ``ask =
mid + half_spread − skew·q``, kept a tick off the opposite best (post-only, GTX), the bid
rounded down and the ask up to the tick; size ``lot``, capped at ``max_inventory·lot − |q|``
on the side that grows inventory and rounded down to the lot step. One working order per
side: a quote whose price moves by a tick (or whose size is wrong) is cancelled once it is
acknowledged and replaced once the cancel is confirmed; hftbacktest cannot cancel an order
whose request is still in flight, and neither does the rule.

**Engine.** hftbacktest's defaults where it has them: ``NoPartialFillExchange``, the feed
latency the data has, ``constant_order_latency(entry, response)`` with response = entry
(hftbacktest's examples; it has one order latency, so a cancel travels like an entry); the
queue model given (``risk_adverse_queue_model`` or ``power_prob_queue_model(n)``). Fees are
counted here: every fill is a maker fill (GTX). The position and fills are read off the
local orders' ``leaves_qty`` (hftbacktest 2.4's local state books only the last piece of an
order filled in several pieces).

Units: prices in quote currency, sizes in contracts, times in seconds unless ``_ns``.
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["QUEUE_MODELS", "events_from_recording", "recorded_events", "reference_quotes",
           "run_reference"]

QUEUE_MODELS = ("prob", "risk_averse")
# hftbacktest.order's statuses: FILLED 3, CANCELED 4 and the refusals EXPIRED 2 (a GTX order
# that would take), REJECTED 6
_REFUSED = (2, 6)
_FINAL = (3, 4, *_REFUSED)
_INSTALL = ("hftbacktest is needed for the cross-check: pip install hftbacktest "
            "(a dev dependency, tested with 2.4.4)")


def _hbt():
    try:
        import hftbacktest
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(_INSTALL) from exc
    return hftbacktest


def _stamp_us(raw: pd.DataFrame, exchange_clock: bool) -> np.ndarray:
    if exchange_clock:
        return raw["exch_time_ms"].to_numpy("int64") * 1000
    return raw["local_time_ns"].to_numpy("int64") // 1000


def recorded_events(dataset: str, seconds: float | None = None, tick: float = 0.1,
                    lot_size: float = 0.001, feed_latency: float | None = None
                    ) -> tuple[np.ndarray, dict]:
    """hftbacktest's event array of an embedded tick dataset (``"binance-usdm:BTCUSDT"``,
    ``"binance:BTCUSDT"``) read from its files as they are (``feeds.embedded.read_raw``),
    the first ``seconds`` only when given: :func:`events_from_recording`."""
    from feeds import embedded

    return events_from_recording(embedded.read_raw(f"{dataset}:trades"),
                                 embedded.read_raw(f"{dataset}:bbo"), seconds, tick, lot_size,
                                 feed_latency)


def events_from_recording(trades: pd.DataFrame, bbo: pd.DataFrame,
                          seconds: float | None = None, tick: float = 0.1,
                          lot_size: float = 0.001, feed_latency: float | None = None
                          ) -> tuple[np.ndarray, dict]:
    """hftbacktest's event array of a recording in the layout of ``feeds/data``'s files
    (``trades``: ``price, size, side, trade_id, exch_time_ms, local_time_ns``; ``bbo``:
    ``bid, bid_size, ask, ask_size, exch_time_ms, local_time_ns``), through
    ``tardis.convert_fuse`` (module doc); the first ``seconds`` only when given.
    ``feed_latency`` (seconds): every event received that long after its stamp instead of
    when it was recorded (a measurement: what a constant feed latency changes).

    Returns ``(events, info)``; ``info`` holds ``clock`` (``"exchange"`` when the BBO has
    exchange times, else ``"local"``), ``start`` (epoch s of the first event kept),
    ``feed_latency`` (median ``local_ts − exch_ts`` of the events, seconds) and the
    recorded mid, ``mid_t`` (ns, the events' clock) and ``mid``, to mark fills to."""
    from hftbacktest.data.utils import tardis

    exchange = bool(bbo["exch_time_ms"].notna().all())
    t_us, b_us = _stamp_us(trades, exchange), _stamp_us(bbo, exchange)
    start = int(min(t_us.min(), b_us.min()))
    if seconds is not None:
        stop = start + int(seconds * 1e6)
        trades, t_us = trades[t_us < stop], t_us[t_us < stop]
        bbo, b_us = bbo[b_us < stop], b_us[b_us < stop]
    t_local = trades["local_time_ns"].to_numpy("int64") // 1000
    b_local = bbo["local_time_ns"].to_numpy("int64") // 1000
    if feed_latency is not None:
        t_local, b_local = t_us + round(feed_latency * 1e6), b_us + round(feed_latency * 1e6)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pd.DataFrame({"exchange": "binance", "symbol": "BTCUSDT", "timestamp": t_us,
                      "local_timestamp": t_local,
                      "id": trades["trade_id"].astype(str), "side": trades["side"],
                      "price": trades["price"], "amount": trades["size"]}
                     ).to_csv(root / "trades.csv", index=False)
        pd.DataFrame({"exchange": "binance", "symbol": "BTCUSDT", "timestamp": b_us,
                      "local_timestamp": b_local,
                      "ask_amount": bbo["ask_size"], "ask_price": bbo["ask"],
                      "bid_price": bbo["bid"], "bid_amount": bbo["bid_size"]}
                     ).to_csv(root / "book_ticker.csv", index=False)
        (root / "incremental_book_L2.csv").write_text(
            "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n")
        with contextlib.redirect_stdout(io.StringIO()):
            events = tardis.convert_fuse(str(root / "trades.csv"),
                                         str(root / "incremental_book_L2.csv"),
                                         str(root / "book_ticker.csv"), tick_size=tick,
                                         lot_size=lot_size)
    lat = (events["local_ts"] - events["exch_ts"]) / 1e9
    order = np.argsort(b_us, kind="stable")  # the file is in receive order
    mid = 0.5 * (bbo["bid"] + bbo["ask"]).to_numpy()
    return events, {"clock": "exchange" if exchange else "local", "start": start / 1e6,
                    "feed_latency": float(np.median(lat)) if len(lat) else 0.0,
                    "mid_t": b_us[order] * 1000, "mid": mid[order]}


def reference_quotes(best_bid: float, best_ask: float, position: float, *, half_spread: float,
                     skew: float, lot: float, tick: float, max_inventory: float,
                     lot_size: float):
    """The rule's quote: ``((bid_tick, bid_size), (ask_tick, ask_size))``, prices as
    integer ticks, a side ``None`` when not quoted (module doc)."""
    mid = 0.5 * (best_bid + best_ask)
    q = position / lot
    bid = min(mid - half_spread - skew * q, best_ask - tick) / tick
    ask = max(mid + half_spread - skew * q, best_bid + tick) / tick
    b = math.floor(bid + 1e-9 * max(1.0, abs(bid)))
    a = max(math.ceil(ask - 1e-9 * max(1.0, abs(ask))), b + 1)
    limit = max_inventory * lot

    def size(room):
        return math.floor(min(lot, max(room, 0.0)) / lot_size + 1e-9) * lot_size

    bid_q = (b, size(limit - position)) if b > 0 else None
    ask_q = (a, size(limit + position)) if a > 0 else None
    return (bid_q if bid_q and bid_q[1] > 0 else None,
            ask_q if ask_q and ask_q[1] > 0 else None)


class _Book:
    """The rule's orders as the responses show them: per order its side, sent time and what
    was left at the last response, every execution, the position they add up to."""

    def __init__(self, hb, hbt, tick: float, lot_size: float):
        self.hb, self.hbt, self.tick, self.lot_size = hb, hbt, tick, lot_size
        self.meta = {}                       # oid -> [sign, sent_ns, leaves]
        self.slot = {1: None, -1: None}      # side -> oid of its working order
        self.sent = {1: 0, -1: 0}
        self.filled_ids, self.rejected, self.fills = set(), 0, []
        self.position, self.next_id = 0.0, 1

    def collect(self):
        """Book the executions the responses report; free the slots of final orders."""
        hb, orders = self.hb, self.hbt.orders(0)
        for oid in list(self.meta):
            sign, sent, leaves = self.meta[oid]
            o = orders.get(oid)
            if o is None:
                continue
            left = o.leaves_qty
            if left < leaves - 0.5 * self.lot_size:
                qty = round((leaves - left) / self.lot_size) * self.lot_size
                self.fills.append((o.exch_timestamp, sign, o.price_tick * self.tick, qty, sent))
                self.position += sign * qty
                self.filled_ids.add(oid)
                self.meta[oid][2] = left
            if o.req == hb.NONE and o.status in _FINAL:
                self.rejected += o.status in _REFUSED
                del self.meta[oid]
                if self.slot[sign] == oid:
                    self.slot[sign] = None

    def quote(self, sign: int, want, threshold_ticks: float):
        """Keep the ``sign`` side (+1 bid, −1 ask) at ``want`` (``(tick, size)`` or ``None``)."""
        hb, hbt = self.hb, self.hbt
        oid = self.slot[sign]
        if oid is not None:
            o = hbt.orders(0).get(oid)
            if o is None or o.req != hb.NONE:
                return  # the ack or the cancel's answer is still on its way
            left = self.meta[oid][2]
            if want is not None:
                k, size = want
                moved = abs(o.price_tick - k) >= threshold_ticks
                if not (moved or left > size + 0.5 * self.lot_size or left < 0.5 * size):
                    return
            hbt.cancel(0, oid, False)
            return
        if want is None:
            return
        k, size = want
        oid, self.next_id = self.next_id, self.next_id + 1
        submit = hbt.submit_buy_order if sign > 0 else hbt.submit_sell_order
        submit(0, oid, k * self.tick, size, hb.GTX, hb.LIMIT, False)
        self.meta[oid] = [sign, hbt.current_timestamp, size]
        self.slot[sign] = oid
        self.sent[sign] += 1


def _mid_before(bbo_t: np.ndarray, bbo_mid: np.ndarray, t: np.ndarray) -> np.ndarray:
    i = np.clip(np.searchsorted(bbo_t, t, side="left") - 1, 0, len(bbo_t) - 1)
    return bbo_mid[i]


def run_reference(events: np.ndarray, info: dict, *, half_spread: float, skew: float, lot: float,
                  max_inventory: float, tick: float, lot_size: float, latency: float,
                  queue: str = "prob", queue_power: float = 3.0, maker: float,
                  partial: bool = False) -> dict:
    """The rule in hftbacktest on ``events`` and their ``info`` (:func:`recorded_events`)
    with order latency
    ``latency`` seconds (entry = response), ``queue`` ``"prob"``
    (``power_prob_queue_model(queue_power)``) or ``"risk_averse"``, maker fee ``maker``
    (a fraction of traded value; every fill is a maker fill) and hftbacktest's
    ``NoPartialFillExchange`` (``partial=True``: ``PartialFillExchange``).

    Returns ``fills_bid, fills_ask`` (executions), ``volume_bid, volume_ask``, ``quotes_bid,
    quotes_ask`` (orders sent), ``quotes_rejected`` (post-only orders expired on arrival),
    ``fill_ratio`` (orders with a fill / orders sent), ``spread_pnl, inventory_pnl, fees,
    total_pnl`` (quote currency, marked to the last mid; spread PnL against the mid before
    each fill), ``final_position`` and ``fill_log`` (``t``, ``sign``, ``price``, ``size``,
    ``placed``; exchange times in epoch seconds)."""
    if queue not in QUEUE_MODELS:
        raise ValueError(f"queue must be one of {QUEUE_MODELS}, got {queue!r}")
    hb = _hbt()
    lat_ns = int(round(latency * 1e9))
    asset = (hb.BacktestAsset().data([events]).linear_asset(1.0)
             .constant_order_latency(lat_ns, lat_ns).tick_size(tick).lot_size(lot_size))
    asset = (asset.power_prob_queue_model(queue_power) if queue == "prob"
             else asset.risk_adverse_queue_model())
    asset = asset.partial_fill_exchange() if partial else asset.no_partial_fill_exchange()
    hbt = hb.HashMapMarketDepthBacktest([asset])
    book = _Book(hb, hbt, tick, lot_size)
    rule = dict(half_spread=half_spread, skew=skew, lot=lot, tick=tick,
                max_inventory=max_inventory, lot_size=lot_size)
    threshold = 0.5  # ticks: any move of a tick
    while True:
        code = hbt.wait_next_feed(False, 60_000_000_000)  # a minute without events: go on
        if code not in (0, 2):
            if code == 1:  # the end of the data: let the responses in flight come back
                hbt.elapse(2 * lat_ns + 1)
                book.collect()
                break
            raise RuntimeError(f"hftbacktest stopped with code {code} at "
                               f"{hbt.current_timestamp} ns")
        book.collect()
        if code == 0:
            continue
        depth = hbt.depth(0)
        best_bid, best_ask = depth.best_bid, depth.best_ask
        if not (math.isfinite(best_bid) and math.isfinite(best_ask)):
            continue
        bid, ask = reference_quotes(best_bid, best_ask, book.position, **rule)
        book.quote(1, bid, threshold)
        book.quote(-1, ask, threshold)
        hbt.clear_inactive_orders(0)
    hbt.close()
    return _summary(book, info, maker)


def _summary(book: _Book, info: dict, maker: float) -> dict:
    mid_t, mid = np.asarray(info["mid_t"], dtype=float), np.asarray(info["mid"], dtype=float)
    fills = np.asarray(book.fills, dtype=float).reshape(-1, 5)
    t, sign, price, qty, sent = fills.T
    before = _mid_before(mid_t, mid, t) if len(t) else np.zeros(0)
    fees = float(np.sum(maker * price * qty))
    last_mid = float(mid[-1])
    total = float(-np.sum(sign * price * qty) + book.position * last_mid) - fees
    spread = float(np.sum(sign * (before - price) * qty))
    n_sent = book.sent[1] + book.sent[-1]
    return {
        "fills_bid": int(np.sum(sign > 0)), "fills_ask": int(np.sum(sign < 0)),
        "volume_bid": float(qty[sign > 0].sum()), "volume_ask": float(qty[sign < 0].sum()),
        "quotes_bid": book.sent[1], "quotes_ask": book.sent[-1],
        "quotes_rejected": int(book.rejected),
        "fill_ratio": len(book.filled_ids) / n_sent if n_sent else float("nan"),
        "spread_pnl": spread, "inventory_pnl": total + fees - spread, "fees": fees,
        "total_pnl": total, "final_position": book.position,
        "fill_log": [dict(t=ti / 1e9, sign=int(s), price=p, size=q, placed=se / 1e9)
                     for ti, s, p, q, se in zip(t, sign, price, qty, sent)],
    }
