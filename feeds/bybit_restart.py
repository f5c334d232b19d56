"""What an earlier run left on the account, taken over at the Bybit broker's first pass.

After a crash (kill -9, a power cut) the account holds what the runner did not see: fills of
its orders while it was down, an order placed just before it died (never journaled), orders
still open. At its first pass, before the strategy's first bar, the broker reconciles:

1. **With a saved state** (``get_state()`` is saved after every bar by
   ``s4_strategies.live.StateSaver``; ``set_state()`` hands it back at start): positions start
   from the saved ones; every execution since the last one applied (``execution/list`` from
   its ``execTime``) and every order of ours updated since (``order/history``), plus the
   orders open at the save, are *adopted*: each becomes a backtrader order (``owner`` None:
   backtrader gives it to the first strategy; ``order.info["adopted"]`` is True) that is
   notified Submitted, Accepted, then its fills as Partial/Completed with Bybit's prices and
   fees, then how it ended. The journal and ``notify_order`` see them as fills, not as a
   position that appeared.
2. **Without one**, the account's positions are taken as they are (earlier fills are history).
3. Orders of ours still open are handled by ``stale_orders``: ``"adopt"`` tracks them as this
   run's orders (the live runner's choice), ``"cancel"`` (the default) adopts then cancels
   them (the journal sees them end), ``"keep"`` leaves them on the exchange, untracked.
4. Every strategy with ``notify_reconcile(data, position, open_orders)`` is then told the
   account as the broker found it, so it can reset what it believed it had ordered
   (``S4DirectionalStrategy`` does). Later passes tell it again where a position had to be
   taken from the exchange (a trade made outside this broker, a liquidation).

Orders are ours when their ``orderLinkId`` starts with the broker's ``prefix``: give runs
that share one account different prefixes.
"""

from __future__ import annotations

import logging
import time

import backtrader as bt

from .bybit_orders import Execution, order_shape
from .bybit_sync import data_symbol, in_exchange_order

logger = logging.getLogger("feeds.bybit_broker")

_WEEK_MS = 7 * 86_400_000  # Bybit's widest startTime..endTime window
_MAX_WEEKS = 104  # Bybit keeps two years of executions and orders


def _weeks(since_ms: int, now_ms: int) -> list[tuple[int, int]]:
    """[start, end] windows of at most seven days from ``since_ms`` past ``now_ms``."""
    start = max(int(since_ms), now_ms - _MAX_WEEKS * _WEEK_MS)
    out = []
    while True:
        out.append((start, start + _WEEK_MS - 1))
        if start + _WEEK_MS > now_ms:
            return out
        start += _WEEK_MS


class BybitRestart:
    """The broker's take-over of an earlier run (a mixin; see the module doc)."""

    # -- the state saved with the strategy's --------------------------------------------
    def get_state(self) -> dict:
        """Where a restart resumes: positions, the last execution applied per symbol (time
        and ids at it), the latest exchange time seen and the orders still open. Before the
        first pass, the state this run resumes from (nothing is known yet to replace it)."""
        if not self._synced_once and self._resume is not None:
            return self._resume
        return {
            "broker": "bybit", "network": self.store.network, "category": self.category,
            "prefix": self.p.prefix,
            "positions": {s: [p.size, p.price] for s, p in self.positions.items() if p.size},
            "last_exec_ms": dict(self._last_exec_ms),
            "last_exec_ids": {s: sorted(ids) for s, ids in self._last_exec_ids.items()},
            # the latest exchange time seen, else (nothing seen yet) a minute before now
            "seen_ms": int(self._last_seen_ms or time.time() * 1000 - 60_000),
            "open": sorted(link for link, o in self.orders.items() if o.alive()),
        }

    def set_state(self, state: dict, datas=None) -> None:
        """Resume from :meth:`get_state` of an earlier run (before the first pass). A state
        of another broker (a shadow run's account) is ignored with a warning; one of another
        network, category or prefix is refused."""
        if not isinstance(state, dict) or state.get("broker") != "bybit":
            logger.warning("bybit broker: the saved state holds another broker's account (a "
                           "shadow run?); starting from the Bybit account as it is")
            return
        mine = {"network": self.store.network, "category": self.category,
                "prefix": self.p.prefix}
        for key, value in mine.items():
            if state.get(key) != value:
                raise ValueError(f"the saved state was made on Bybit {key} "
                                 f"{state.get(key)!r}; this run has {value!r}: give it its "
                                 "own state file (another --out)")
        if self._synced_once:
            logger.warning("bybit broker: set_state after the first pass is ignored")
            return
        self._resume = state

    # -- the first pass -----------------------------------------------------------------
    def take_over(self) -> set[str]:
        """With a saved state: positions from it, then what happened since (module doc, 1).
        Returns the symbols reconciled."""
        st, self._resume = self._resume, None
        if st is None:
            return set()
        changed = set()
        self._last_exec_ms.update(st.get("last_exec_ms", {}))
        self._last_exec_ids.update({s: set(v) for s, v in st.get("last_exec_ids", {}).items()})
        self._last_seen_ms = max(self._last_seen_ms, int(st.get("seen_ms") or 0))
        for symbol in self.store.symbols:
            inst = self.store.instrument(symbol)
            size, price = st.get("positions", {}).get(symbol, (0.0, 0.0))
            self.positions[symbol].set(inst.snap(size), price if size else 0.0)
            self._seen |= set(st.get("last_exec_ids", {}).get(symbol, ()))
            since = int(st.get("last_exec_ms", {}).get(symbol) or st.get("seen_ms") or 0)
            execs = [ex for ex in self._executions_since(symbol, since)
                     if ex.exec_id not in self._seen and ex.exec_type == "Trade"]
            recs = self._orders_since(symbol, int(st.get("seen_ms") or since) + 1)
            for link in list(st.get("open", ())) + [ex.link_id for ex in execs]:
                if self._ours(link) and link not in recs and link not in self.orders:
                    rec = self.order_record(symbol, link)
                    if rec is not None:
                        recs[link] = rec
            for link, rec in sorted(recs.items(), key=lambda kv: int(kv[1].get("createdTime")
                                                                    or 0)):
                if link in self.orders:
                    continue
                fresh = sum(inst.lots(ex.size) for ex in execs if ex.link_id == link)
                self.adopt(rec, inst.lots(float(rec.get("cumExecQty") or 0.0)) - fresh)
            for ex in execs:
                self._apply_execution(ex)
            for link, rec in recs.items():
                if link in self.orders:
                    self._apply_order(link, rec)
                    self._stale_policy(link)
            changed.add(symbol)
            logger.info("bybit broker: %s resumed from the saved state: %d fill(s) and %d "
                        "order(s) of ours since", symbol, len(execs), len(recs))
        return changed

    def earlier_order(self, rec: dict) -> set[str]:
        """An open order of ours from an earlier run, met at the first pass (no saved state
        covered it): handled by ``stale_orders`` (module doc, 3)."""
        link, symbol = str(rec.get("orderLinkId")), str(rec.get("symbol"))
        if self.p.stale_orders == "keep":
            self._ignored.add(link)
            logger.warning("bybit broker: keeping %s order %s left by an earlier run (not "
                           "tracked by this run)", symbol, link)
            return set()
        inst = self.store.instrument(symbol)
        order = self.adopt(rec, inst.lots(float(rec.get("cumExecQty") or 0.0)))
        if order is None:
            if self.p.stale_orders == "cancel":
                logger.warning("bybit broker: cancelling %s order %s left by an earlier run",
                               symbol, link)
                self._send_cancel(symbol, link)
            return set()
        self._stale_policy(link)
        return {symbol}

    def _stale_policy(self, link: str) -> None:
        order = self.orders.get(link)
        if order is None or not order.alive():
            return
        symbol = data_symbol(order.data)
        if self.p.stale_orders == "adopt":
            logger.warning("bybit broker: taking over %s order %s left by an earlier run",
                           symbol, link)
        elif self.p.stale_orders == "cancel":
            logger.warning("bybit broker: cancelling %s order %s left by an earlier run",
                           symbol, link)
            self.cancel(order)
        else:
            logger.warning("bybit broker: keeping %s order %s left by an earlier run (not "
                           "tracked by this run)", symbol, link)
            self.orders.pop(link, None)
            self._ignored.add(link)

    def adopt(self, rec: dict, base_lots: int):
        """A backtrader order for Bybit's order record ``rec`` of an earlier run, tracked
        from here; ``base_lots``: its fills already in the position (history). None when no
        feed of this run trades the symbol or nothing of it is left to report."""
        link, symbol = str(rec.get("orderLinkId")), str(rec.get("symbol"))
        data = self._data_of(symbol)
        inst = self.store.instrument(symbol)
        lots = inst.lots(float(rec.get("qty") or 0.0)) - base_lots
        if data is None or not len(data) or lots <= 0:
            if lots > 0:
                logger.warning("bybit broker: %s order %s of an earlier run: no feed of this "
                               "run trades %s, so no strategy is told of it", symbol, link,
                               symbol)
            return None
        exectype, price, plimit = order_shape(rec)
        cls = bt.BuyOrder if rec.get("side") == "Buy" else bt.SellOrder
        order = cls(owner=None, data=data, size=inst.from_lots(lots), price=price,
                    pricelimit=plimit, exectype=exectype)
        order.addcomminfo(self.getcommissioninfo(data))
        oid = str(rec.get("orderId") or "")
        order.addinfo(orderLinkId=link, orderId=oid, adopted=True)
        self.orders[link] = order
        if oid:
            self.by_id[oid] = link
        self._lots[link], self._base[link] = 0, base_lots
        order.submit(self)
        self.notify(order)
        order.accept(self)
        self.notify(order)
        return order

    def tell_strategies(self, symbols) -> None:
        """``notify_reconcile(data, position, open_orders)`` of every running strategy that
        has it, for each of its feeds on ``symbols`` (module doc, 4)."""
        if not symbols:
            return
        cerebro = getattr(self, "cerebro", None)
        for strat in list(getattr(cerebro, "runningstrats", None) or []):
            hook = getattr(strat, "notify_reconcile", None)
            if not callable(hook):
                continue
            for data in strat.datas:
                symbol = data_symbol(data)
                if symbol in symbols:
                    hook(data, self.getposition(data),
                         [o for o in self.orders.values()
                          if o.alive() and data_symbol(o.data) == symbol])

    # -- reading the account --------------------------------------------------------------
    def _ours(self, link: str) -> bool:
        return str(link).startswith(f"{self.p.prefix}-")

    def _data_of(self, symbol: str):
        data = self._datas.get(symbol)
        if data is None:
            for d in getattr(getattr(self, "cerebro", None), "datas", None) or []:
                if data_symbol(d) == symbol:
                    data = self._datas[symbol] = d
                    break
        return data

    def _executions_since(self, symbol: str, since_ms: int) -> list[Execution]:
        rows = []
        for start, end in _weeks(since_ms, int(time.time() * 1000)):
            rows += self.store.rows("get_executions", category=self.category, symbol=symbol,
                                    startTime=start, endTime=end)
        return in_exchange_order(Execution.from_record(r) for r in rows)

    def _orders_since(self, symbol: str, since_ms: int) -> dict[str, dict]:
        out = {}
        for start, end in _weeks(since_ms, int(time.time() * 1000)):
            for rec in self.store.rows("get_order_history", category=self.category,
                                       symbol=symbol, startTime=start, endTime=end):
                link = str(rec.get("orderLinkId") or "")
                if self._ours(link) and link not in self.orders:
                    out.setdefault(link, rec)
        return out
