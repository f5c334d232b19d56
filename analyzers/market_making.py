"""Market-making statistics: where the PnL came from, fills, inventory and spreads.

``MarketMakingAnalyzer`` works with any strategy that quotes with limit orders. PnL is
split the standard way, marking every fill to the mid prevailing just before the event it
happened on (``mid_ref``: the pre-trade mid on ticks, the previous close on bars, i.e. the
price the quote was set against):

- spread PnL    = Σ mult·(mid_ref − price)·size      (size signed: + buy, − sell)
- inventory PnL = Σ_t mult·position_t·(mid_t − mid_{t−1})   (position after event t's fills)
- fees          = Σ commission (negative for a rebate)

so that ``spread_pnl + inventory_pnl − fees = total_pnl`` holds by construction
(summation by parts), and ``total_pnl`` is checked against the broker's value change
(``broker_pnl``; equal when the broker marks positions to the same mid, which it does for
``feeds.TickData`` (close = mid) and for bars (mid = close)).

Reported per feed and in total (``get_analysis()["total"]`` and ``[name]``):
``total_pnl, spread_pnl, inventory_pnl, fees, broker_pnl``; ``fills_bid, fills_ask,
fills_taker`` (executions), ``volume_bid, volume_ask``, ``quotes_bid, quotes_ask`` (limit
orders that reached the book), ``fill_ratio`` (quotes with a fill / quotes);
``mean_abs_inventory, max_abs_inventory`` (per event, after fills),
``time_weighted_inventory, time_weighted_abs_inventory``; ``quoted_spread`` (mean of best
resting ask − best resting bid while both sides rest) and ``quoted_spread_bps``;
``effective_spread`` (2·side·(mid_ref − price), size-weighted, passive fills) and
``realised_spread`` (2·side·(mid ``realised_after`` seconds later − price)) with
``adverse_selection`` = effective − realised, in price and in bps; ``close_inventory``
(position at each session close) and ``final_inventory``.

The fills, inventory and quotes are the exchange's: with a broker that delays its reports
to the strategy (``MarketMakingBroker``'s response latency) the analyzer listens to the
broker's undelayed side (``add_exchange_listener``), so its numbers are not the strategy's
late view; with other brokers it reads ``notify_order``. ``series()``, ``fills()`` and
``quote_log()`` hand the per-event mid, position and PnL, every execution and every quote's
time in the book to the report (:mod:`analyzers.mm_report`).

Fill quality (:mod:`analyzers.mm_fills`), per feed and in total. Markouts of every execution
the analyzer saw (any broker) ``h`` = 1, 10, 60 s later (``markout_horizons``):
``markout_{h}s`` = size-weighted mean of sign·(mid at or before t + h − price), in price
(positive: the fill made money), with ``_bps`` (1e4·markout/price), ``_bid`` (buys) and
``_ask`` (sells) variants, ``_n`` (fills used) and ``_left_out`` (fills with t + h past the
data); ``None`` when no fill counts; the total pools the feeds' fills. From the broker's
``fill_log`` (``MarketMakingBroker``): ``fills_by_kind`` (kind → executions: through, queue,
book, taker, market, intensity, touch) and ``volume_by_kind`` (contracts);
``fill_latency_median``, ``fill_latency_p90`` (seconds, placement → fill) and
``arrival_to_fill_median`` (seconds, arrival at the book → fill); ``fills_in_flight``,
``volume_in_flight`` (fills after a cancel was sent). A broker without a fill log gives
``None`` for these and 0 counts. Against the strategy's
``inventory_limit(data)`` (contracts; none: no limit): ``inventory_breaches`` (events with
|position| over it), ``breach_episodes`` (runs of such events), ``max_breach`` (contracts
over) and ``time_over_limit`` (seconds; summed over feeds in the total).
"""

from __future__ import annotations

import math

import backtrader as bt
import numpy as np
import pandas as pd

from feeds.bartime import SECONDS_PER_DAY, num_to_epoch, seconds_after_midnight

from . import mm_fills
from .mm_plots import format_table, plot_inventory

__all__ = ["MarketMakingAnalyzer", "format_table", "plot_inventory"]

_TIME_TOL = 1e-4  # s: backtrader's float dates hold epoch seconds to about 15 µs


class _Acc:
    def __init__(self, mult: float):
        self.mult = mult
        self.seen = 0
        self.pos = 0.0          # position after the fills seen so far
        self.pos_marked = 0.0   # position at the last mark (before this event's fills)
        self.mid_prev = None
        self.t_prev = None
        self.spread_pnl = 0.0
        self.inventory_pnl = 0.0
        self.fees = 0.0
        self.fills = {"bid": 0, "ask": 0, "taker": 0}
        self.volume = {"bid": 0.0, "ask": 0.0, "taker": 0.0}
        self.quotes = {"bid": 0, "ask": 0}
        self.rejected = 0
        self.filled_refs = set()
        self.quote_refs = set()
        self.live = {}          # ref -> (side, price)
        self.abs_sum = 0.0
        self.n = 0
        self.max_abs = 0.0
        self.tw = 0.0
        self.tw_abs = 0.0
        self.span = 0.0
        self.qs_sum = 0.0
        self.qs_bps_sum = 0.0
        self.qs_n = 0
        self.passive = []       # (t, sign, price, size, mid)
        self.t = []
        self.mid = []
        self.position = []
        self.pnl = []           # (spread, inventory, fees) PnL so far after each event
        self.quote_log = []     # [ref, sign, price, size, t in the book, t out or None]
        self.quote_at = {}      # ref -> its quote_log row
        self.trades = []        # (t, sign, price, size, taker)
        self.close_inventory = []


def _side(order) -> str:
    return "bid" if order.isbuy() else "ask"


class MarketMakingAnalyzer(bt.Analyzer):
    """Spread/inventory PnL split, fills, inventory and spreads (see the module doc).

    Params: ``realised_after`` (60 s), ``session_close`` (``"HH:MM"`` UTC; ``None`` takes
    the strategy's ``session_close`` param when it has one), ``markout_horizons`` (seconds).
    """

    params = (("realised_after", 60.0), ("session_close", None),
              ("markout_horizons", mm_fills.HORIZONS))

    def start(self):
        self._acc = {}
        for data in self.datas:
            ci = self.strategy.broker.getcommissioninfo(data)
            self._acc[data] = _Acc(float(getattr(ci.p, "mult", 1.0) or 1.0))
        self._start_value = self.strategy.broker.getvalue()
        close = self.p.session_close
        if close is None:
            close = getattr(self.strategy.p, "session_close", None)
        self._close_s = seconds_after_midnight(close)
        listen = getattr(self.strategy.broker, "add_exchange_listener", None)
        self._listening = listen is not None
        if self._listening:
            listen(self._on_exchange)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _mid(data) -> float:
        if hasattr(data.lines, "mid"):
            m = data.lines.mid[0]
            if math.isfinite(m):
                return m
        return data.close[0]

    def notify_order(self, order):
        if not self._listening:
            self._book(order, None)

    def _on_exchange(self, order, when):
        """The broker's undelayed report of a status change (``when``: exchange time)."""
        self._book(order, when)

    def _book(self, order, when):
        acc = self._acc.get(order.data)
        if acc is None:
            return
        limit = order.exectype == bt.Order.Limit
        t = num_to_epoch(order.data.datetime[0])
        if limit and order.status == order.Accepted and order.ref not in acc.quote_refs:
            acc.quote_refs.add(order.ref)
            acc.quotes[_side(order)] += 1
            acc.live[order.ref] = (_side(order), order.created.price)
            row = [order.ref, 1.0 if order.isbuy() else -1.0, order.created.price,
                   abs(order.created.size), t if when is None else when, None]
            acc.quote_log.append(row)
            acc.quote_at[order.ref] = row
        if limit and order.status == order.Rejected:
            acc.rejected += 1
        # fills are marked to the mid prevailing before the event they happen on: the
        # pre-trade mid on ticks, the previous close (the price the quote was set at) on bars
        mid = acc.mid_prev if acc.mid_prev is not None else self._mid(order.data)
        taker = (not limit) or bool(order.info.get("taker", False))
        for bit in order.executed.iterpending():
            size, price = bit.size, bit.price
            if not size:
                continue
            acc.spread_pnl += acc.mult * (mid - price) * size
            acc.fees += bit.comm
            acc.pos += size
            key = "taker" if taker else _side(order)
            acc.fills[key] += 1
            acc.volume[key] += abs(size)
            acc.trades.append((t, math.copysign(1.0, size), price, abs(size), taker))
            if limit and not taker:
                acc.filled_refs.add(order.ref)
                acc.passive.append((t, math.copysign(1.0, size), price, abs(size), mid))
        if not order.alive():
            acc.live.pop(order.ref, None)
            row = acc.quote_at.pop(order.ref, None)
            if row is not None:
                row[5] = t if when is None else when

    def next(self):
        for data, acc in self._acc.items():
            n = len(data)
            if n == 0 or n == acc.seen:
                continue
            acc.seen = n
            t = num_to_epoch(data.datetime[0])
            mid = self._mid(data)
            if acc.mid_prev is not None:
                # this event's fills were marked at mid_prev, so they carry its move too
                acc.inventory_pnl += acc.mult * acc.pos * (mid - acc.mid_prev)
                dt = t - acc.t_prev
                acc.tw += acc.pos_marked * dt
                acc.tw_abs += abs(acc.pos_marked) * dt
                acc.span += dt
                if self._close_s is not None:
                    k0 = math.floor((acc.t_prev - self._close_s) / SECONDS_PER_DAY)
                    k1 = math.floor((t - self._close_s) / SECONDS_PER_DAY)
                    if k1 > k0:
                        when = (k1 * SECONDS_PER_DAY) + self._close_s
                        acc.close_inventory.append(
                            (pd.Timestamp(when, unit="s", tz="UTC").isoformat(), acc.pos_marked))
            acc.mid_prev, acc.t_prev = mid, t
            acc.pos_marked = acc.pos
            acc.abs_sum += abs(acc.pos)
            acc.n += 1
            acc.max_abs = max(acc.max_abs, abs(acc.pos))
            bids = [p for s, p in acc.live.values() if s == "bid"]
            asks = [p for s, p in acc.live.values() if s == "ask"]
            if bids and asks:
                qs = min(asks) - max(bids)
                acc.qs_sum += qs
                acc.qs_bps_sum += 1e4 * qs / mid
                acc.qs_n += 1
            acc.t.append(t)
            acc.mid.append(mid)
            acc.position.append(acc.pos)
            acc.pnl.append((acc.spread_pnl, acc.inventory_pnl, acc.fees))

    # ------------------------------------------------------------------ results
    def _summary(self, acc: _Acc) -> dict:
        total = acc.spread_pnl + acc.inventory_pnl - acc.fees
        quotes = acc.quotes["bid"] + acc.quotes["ask"]
        eff = real = eff_bps = real_bps = float("nan")
        if acc.passive and acc.t:
            t = np.asarray(acc.t)
            mids = np.asarray(acc.mid)
            p = np.asarray(acc.passive, dtype=float)
            idx = np.minimum(np.searchsorted(t, p[:, 0] + self.p.realised_after, "left"),
                             len(t) - 1)
            later = mids[idx]
            w = p[:, 3]
            e = 2.0 * p[:, 1] * (p[:, 4] - p[:, 2])
            r = 2.0 * p[:, 1] * (later - p[:, 2])
            eff, real = float(np.average(e, weights=w)), float(np.average(r, weights=w))
            eff_bps = float(np.average(1e4 * e / p[:, 4], weights=w))
            real_bps = float(np.average(1e4 * r / p[:, 4], weights=w))
        return {
            "total_pnl": total,
            "spread_pnl": acc.spread_pnl,
            "inventory_pnl": acc.inventory_pnl,
            "fees": acc.fees,
            "fills_bid": acc.fills["bid"],
            "fills_ask": acc.fills["ask"],
            "fills_taker": acc.fills["taker"],
            "volume_bid": acc.volume["bid"],
            "volume_ask": acc.volume["ask"],
            "volume_taker": acc.volume["taker"],
            "quotes_bid": acc.quotes["bid"],
            "quotes_ask": acc.quotes["ask"],
            "quotes_rejected": acc.rejected,
            "fill_ratio": len(acc.filled_refs) / quotes if quotes else float("nan"),
            "mean_abs_inventory": acc.abs_sum / acc.n if acc.n else 0.0,
            "max_abs_inventory": acc.max_abs,
            "time_weighted_inventory": acc.tw / acc.span if acc.span else 0.0,
            "time_weighted_abs_inventory": acc.tw_abs / acc.span if acc.span else 0.0,
            "quoted_spread": acc.qs_sum / acc.qs_n if acc.qs_n else float("nan"),
            "quoted_spread_bps": acc.qs_bps_sum / acc.qs_n if acc.qs_n else float("nan"),
            "effective_spread": eff,
            "effective_spread_bps": eff_bps,
            "realised_spread": real,
            "realised_spread_bps": real_bps,
            "adverse_selection": eff - real,
            "adverse_selection_bps": eff_bps - real_bps,
            "close_inventory": list(acc.close_inventory),
            "final_inventory": acc.pos,
            "events": acc.n,
        }

    def stop(self):
        log = getattr(self.strategy.broker, "fill_log", None)
        limit_of = getattr(self.strategy, "inventory_limit", None)
        out, marks, breaches = {}, [], []
        for i, (data, acc) in enumerate(self._acc.items()):
            s = out[data._name or f"data{i}"] = self._summary(acc)
            fills = np.asarray(acc.trades, dtype=float).reshape(-1, 5)
            marks.append(mm_fills.markouts(*fills[:, :4].T, acc.t, acc.mid,
                                           self.p.markout_horizons, tol=_TIME_TOL))
            limit = math.inf if limit_of is None else limit_of(data)
            breaches.append(mm_fills.inventory_breaches(acc.t, acc.position, limit))
            s.update(**mm_fills.markout_keys(marks[-1]), **breaches[-1],
                     **mm_fills.fill_log_keys(log, data._name))
        keys_sum = ("total_pnl", "spread_pnl", "inventory_pnl", "fees", "fills_bid",
                    "fills_ask", "fills_taker", "volume_bid", "volume_ask", "volume_taker",
                    "quotes_bid", "quotes_ask", "quotes_rejected")
        total = {k: sum(s[k] for s in out.values()) for k in keys_sum}
        filled = sum(len(a.filled_refs) for a in self._acc.values())
        quotes = total["quotes_bid"] + total["quotes_ask"]
        total["fill_ratio"] = filled / quotes if quotes else float("nan")
        total["broker_pnl"] = self.strategy.broker.getvalue() - self._start_value
        total["reconciles"] = bool(math.isclose(total["total_pnl"], total["broker_pnl"],
                                                rel_tol=1e-9, abs_tol=1e-6))
        pooled = mm_fills.pool_markouts(marks, self.p.markout_horizons)
        total.update(**mm_fills.markout_keys(pooled), **mm_fills.pool_breaches(breaches),
                     **mm_fills.fill_log_keys(log))
        self.rets["total"] = total
        for name, summary in out.items():
            self.rets[name] = summary

    def series(self, data=None) -> pd.DataFrame:
        """Per-event ``mid``, ``position`` (after fills, contracts) and the PnL so far in
        quote currency, ``spread_pnl``, ``inventory_pnl``, ``fees`` and ``pnl`` (their total),
        of a feed (the first by default)."""
        acc = self._acc[data if data is not None else self.datas[0]]
        idx = pd.to_datetime(np.asarray(acc.t) * 1e9, utc=True).rename("datetime")
        parts = np.asarray(acc.pnl, dtype=float).reshape(-1, 3)
        return pd.DataFrame({"mid": acc.mid, "position": acc.position,
                             "spread_pnl": parts[:, 0], "inventory_pnl": parts[:, 1],
                             "fees": parts[:, 2], "pnl": parts[:, 0] + parts[:, 1] - parts[:, 2]},
                            index=idx)

    def quote_log(self, data=None) -> pd.DataFrame:
        """Every limit order of a feed that reached the book: ``side`` (+1 bid, −1 ask),
        ``price``, ``size``, ``start`` and ``end`` (UTC times in and out of the book; ``end``
        NaT while it still rests)."""
        acc = self._acc[data if data is not None else self.datas[0]]
        df = pd.DataFrame(acc.quote_log, columns=["ref", "side", "price", "size", "start",
                                                  "end"]).set_index("ref")
        for col in ("start", "end"):
            df[col] = pd.to_datetime(df[col].astype(float) * 1e9, utc=True)
        return df

    def fills(self, data=None) -> pd.DataFrame:
        """Every execution of a feed: ``side`` (+1 buy / −1 sell), ``price``, ``size`` and
        ``taker``."""
        acc = self._acc[data if data is not None else self.datas[0]]
        df = pd.DataFrame(acc.trades, columns=["t", "side", "price", "size", "taker"])
        df.index = pd.to_datetime(df.pop("t").to_numpy() * 1e9, utc=True).rename("datetime")
        return df
