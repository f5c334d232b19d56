"""What the account says, applied to the Bybit broker's orders, positions and wallet.

The mixin of :class:`~feeds.bybit_broker.BybitBroker` that reads: private-stream messages
(``order``, ``execution``, ``position``, ``wallet``) and the REST re-syncs. A re-sync runs
at the first pass (before the strategy's first bar), after every (re)connect of the private
stream (each successful ``auth``/``subscribe`` reply: pybit reconnects within milliseconds,
faster than any polling of ``is_connected()`` sees), every ``resync_every`` seconds, after an
unreadable message, and when a request's reply was lost.

Order state follows the exchange, not float arithmetic: quantities are counted in whole lot
steps (``Instrument.lots``), an order is complete when its executions add up to its quantity
in lots (or Bybit reports it ``Filled`` and every execution it reports has been applied),
and positions are kept on the lot grid (never a residue such as -1.4e-17). Executions are
applied once (by ``execId``), in exchange order (``execTime``) whichever way they arrive; an
order that ended with fills not seen yet has them fetched first, so a cancel never overtakes
the fills before it.
"""

from __future__ import annotations

import logging
import time

from .bartime import epoch_to_num
from .bybit_orders import Execution, order_outcome
from .errors import ExchangeError

logger = logging.getLogger("feeds.bybit_broker")


def data_symbol(data) -> str:
    """The exchange symbol of a feed: its ``symbol`` param, else its name."""
    return getattr(data.p, "symbol", None) or data._name


def _num(ms: int) -> float:
    """Bybit milliseconds (0: now) → backtrader's date number (naive UTC)."""
    return epoch_to_num(ms / 1000.0 if ms else time.time())


def in_exchange_order(executions) -> list[Execution]:
    """Executions oldest first by ``execTime``; Bybit lists newest first, so ties keep the
    exchange's order (the list reversed, then a stable sort)."""
    return sorted(reversed(list(executions)), key=lambda ex: ex.time_ms)


class AccountSync:
    """Reading side of the broker (a mixin: the broker holds the state it updates)."""

    def reconcile(self) -> None:
        """Wallet, open orders and positions from the account (first pass, reconnect, timer).

        Orders first: fills they had while we were not listening are applied before the
        positions are compared, so a position is only overwritten for a real difference.
        The first pass also takes over what an earlier run left (``BybitRestart``)."""
        first = not self._synced_once
        self._read_wallet()
        changed: set[str] = set()
        if first:
            changed |= self.take_over()
            self._baseline()
        for symbol in self.store.symbols:
            for rec in self.store.rows("get_open_orders", category=self.category, symbol=symbol,
                                       openOnly=0):
                link = str(rec.get("orderLinkId") or "")
                if link in self.orders:
                    self._resync_order(link, rec)
                elif link.startswith(f"{self.p.prefix}-") and first:
                    changed |= self.earlier_order(rec)
                elif link not in self._ignored:
                    self._ignored.add(link)
                    logger.info("bybit broker: %s has an open order %s (%s) not placed by this "
                                "run; left alone", symbol, rec.get("orderId"), link or "no id")
        for link, order in list(self.orders.items()):
            if order.alive() and order.status != order.Created:
                self._resync_order(link)
        for symbol in self.store.symbols:
            if self._read_position(symbol):
                changed.add(symbol)
        self._last_sync = self.p.clock()
        self._synced_once = True
        if self.startingcash is None:
            self.startingcash = self.cash  # backtrader's writer and analyzers read it
        self.tell_strategies(set(self.store.symbols) if first else changed)

    def _baseline(self) -> None:
        """Where the fills this run applies begin, in the exchange's clock: the account's
        latest execution per symbol (already in the position read at this pass), unless one
        is known. Local clocks drift; Bybit's ``execTime`` does not."""
        for symbol in self.store.symbols:
            if symbol in self._last_exec_ms:
                continue
            rows = self.store.call("get_executions", category=self.category, symbol=symbol,
                                   limit=1).get("list") or []
            if rows:
                ex = Execution.from_record(rows[0])
                self._last_exec_ms[symbol], self._last_exec_ids[symbol] = ex.time_ms, {ex.exec_id}
                self._seen.add(ex.exec_id)
                self._last_seen_ms = max(self._last_seen_ms, ex.time_ms)

    def _read_wallet(self) -> None:
        rows = self.store.call("get_wallet_balance", accountType=self.store.account_type,
                               coin=self.store.coin).get("list") or []
        self._apply_wallet(rows)

    def _apply_wallet(self, rows) -> None:
        for acct in rows:
            for coin in acct.get("coin") or []:
                if coin.get("coin") == self.store.coin:
                    self.cash = float(coin.get("walletBalance") or 0.0)
                    self.value = float(coin.get("equity") or self.cash)
                    return

    def _read_position(self, symbol: str) -> bool:
        rows = self.store.rows("get_positions", category=self.category, symbol=symbol)
        return bool(self._apply_positions(rows, source="REST"))

    def _apply_positions(self, rows, source: str) -> set[str]:
        """Compare the exchange's positions with ours (in lots). A difference first re-reads
        the symbol's live orders (a position update can overtake the execution that made it:
        the fill is then fetched and applied once); only a difference that remains (a trade
        made outside this broker, a liquidation) makes ours the exchange's, with a warning.
        Returns the symbols whose position was overwritten."""
        overwritten = set()
        for rec in rows:
            symbol = rec.get("symbol")
            if not symbol:
                continue
            inst = self.store.instrument(symbol)
            size = inst.snap(float(rec.get("size") or 0.0))
            size = -size if rec.get("side") == "Sell" else size
            price = float(rec.get("avgPrice") or rec.get("entryPrice") or 0.0)
            pos = self.positions[symbol]
            if inst.lots(pos.size - size) == 0:
                continue
            if source == "stream":
                for link, order in list(self.orders.items()):
                    if order.alive() and data_symbol(order.data) == symbol:
                        self._resync_order(link)
                if inst.lots(pos.size - size) == 0:
                    continue
            if self._synced_once or source == "stream":
                logger.warning("bybit broker: %s position %g on the exchange (%s), %g here; "
                               "taking the exchange's", symbol, size, source, pos.size)
            elif size:
                logger.info("bybit broker: %s starts from the account's position %g at %g",
                            symbol, size, price)
            pos.set(size, price if size else 0.0)
            overwritten.add(symbol)
        return overwritten

    def on_message(self, msg) -> None:
        """Apply one private-stream message (V5 dict) to orders, positions and wallet. A
        successful ``auth`` or ``subscribe`` reply means the stream (re)connected: what
        happened meanwhile is read over REST on this pass."""
        if not isinstance(msg, dict):
            return
        topic = str(msg.get("topic", ""))
        data = msg.get("data") or []
        if topic == "execution" or topic.startswith("execution."):
            for ex in sorted((Execution.from_record(rec) for rec in data),
                             key=lambda ex: ex.time_ms):
                self._apply_execution(ex)
        elif topic == "order" or topic.startswith("order."):
            for rec in data:
                link = self.by_id.get(str(rec.get("orderId")), str(rec.get("orderLinkId") or ""))
                if link in self.orders:
                    self._apply_order(link, rec)
        elif topic == "position" or topic.startswith("position."):
            if self._synced_once:  # before the first pass, its REST read decides
                self.tell_strategies(self._apply_positions(data, source="stream"))
        elif topic == "wallet":
            self._apply_wallet(data)
        elif msg.get("op") in ("auth", "subscribe"):
            self._on_reply(msg)

    def _on_reply(self, msg: dict) -> None:
        if msg.get("success") is False:
            raise ExchangeError(f"Bybit refused the private stream ({msg.get('op')}): "
                                f"{msg.get('ret_msg')}")
        if msg.get("success") is True:
            self._on_connected(msg["op"])

    def _on_connected(self, op: str) -> None:
        if op == "auth":
            self.connects += 1
            if self.connects > 1:
                logger.warning("bybit broker: private stream reconnected (connection %d); "
                               "re-syncing orders, executions and positions", self.connects)
        self._need_sync = True

    def _check_connection(self) -> None:
        """Polling fallback for clients that send no ``auth``/``subscribe`` replies."""
        ws = self._ws
        probe = getattr(ws, "is_connected", None)
        if probe is None:
            return
        try:
            up = bool(probe())
        except Exception:
            up = False
        if up and self._was_connected is False:
            logger.warning("bybit broker: private stream back; re-syncing orders and positions")
            self._need_sync = True
        self._was_connected = up

    def _apply_execution(self, ex: Execution) -> None:
        if ex.exec_id in self._seen or ex.exec_type != "Trade":
            return
        link = self.by_id.get(ex.order_id, ex.link_id)
        order = self.orders.get(link)
        if order is None:  # not ours (or a liquidation): the position stream reports it
            return
        self._seen.add(ex.exec_id)
        self._note_exec(ex)
        inst = self.store.instrument(ex.symbol)
        pos = self.positions[ex.symbol]
        old_price = pos.price
        psize, pprice, opened, closed = pos.update(ex.size, ex.price)
        psize = pos.size = inst.snap(psize)
        if not psize:
            pprice = pos.price = 0.0
        ci = order.comminfo
        closed_comm = ex.fee * abs(closed) / abs(ex.size) if ex.size else 0.0
        pnl = ci.profitandloss(-closed, old_price, ex.price) if closed else 0.0
        order.execute(_num(ex.time_ms), ex.size, ex.price,
                      closed, ci.getoperationcost(closed, old_price), closed_comm,
                      opened, ci.getoperationcost(opened, ex.price), ex.fee - closed_comm,
                      ci.getvaluesize(ex.size, ex.price), pnl, psize, pprice)
        done = self._lots[link] = self._lots.get(link, 0) + inst.lots(ex.size)
        total = inst.lots(order.created.size)
        order.executed.size = inst.from_lots(done, order.created.size)
        order.executed.remsize = inst.from_lots(max(total - done, 0), order.created.size)
        if done < total:
            order.partial()
            self.notify(order, (ex.exec_id,))
        else:
            self._complete(link, order, (ex.exec_id,))

    def _complete(self, link: str, order, exec_ids=()) -> None:
        order.completed()
        self.orders.pop(link, None)
        self.notify(order, exec_ids)
        self._cancel_siblings(order)

    def _note_exec(self, ex: Execution) -> None:
        """The latest execution time applied per symbol, and the ids applied at it (where a
        restart's catch-up resumes)."""
        last = self._last_exec_ms.get(ex.symbol, 0)
        if ex.time_ms > last:
            self._last_exec_ms[ex.symbol] = ex.time_ms
            self._last_exec_ids[ex.symbol] = {ex.exec_id}
        elif ex.time_ms == last:
            self._last_exec_ids.setdefault(ex.symbol, set()).add(ex.exec_id)
        self._last_seen_ms = max(self._last_seen_ms, ex.time_ms)

    def _apply_order(self, link: str, rec: dict) -> None:
        order = self.orders[link]
        if rec.get("orderId"):
            self.by_id[str(rec["orderId"])] = link
        self._last_seen_ms = max(self._last_seen_ms, int(rec.get("updatedTime") or 0))
        outcome, reason = order_outcome(rec)
        if outcome in ("accepted", "open"):
            if order.status == order.Submitted:
                order.accept(self)
                self.notify(order)
            return
        if self._missing_lots(link, rec) > 0:  # fills not seen yet: fetch them first
            self._fetch_executions(link, rec)
        if link not in self.orders:
            return
        if outcome in ("cancelled", "rejected"):
            if reason and outcome == "rejected":
                logger.error("bybit broker: order %s %s by Bybit: %s", link, outcome, reason)
            self._finish(order, outcome, reason)
        elif outcome == "filled" and self._missing_lots(link, rec) == 0 and order.alive():
            # Bybit says Filled and every fill it reports is applied: done, whatever the
            # lot count of an amended size says
            self._complete(link, order)

    def _missing_lots(self, link: str, rec: dict) -> int:
        """Lots Bybit reports executed (``cumExecQty``) that this broker has not applied."""
        order = self.orders[link]
        inst = self.store.instrument(data_symbol(order.data))
        return (inst.lots(float(rec.get("cumExecQty") or 0.0)) - self._base.get(link, 0)
                - self._lots.get(link, 0))

    def _fetch_executions(self, link: str, rec: dict) -> None:
        symbol = rec.get("symbol") or data_symbol(self.orders[link].data)
        kw = {"orderId": rec["orderId"]} if rec.get("orderId") else {}
        rows = self.store.rows("get_executions", category=self.category, symbol=symbol, **kw)
        for ex in in_exchange_order(Execution.from_record(r) for r in rows):
            if ex.link_id in ("", link) or self.by_id.get(ex.order_id) == link:
                self._apply_execution(ex)

    def _resync_order(self, link: str, rec: dict | None = None) -> bool:
        """Read order ``link`` over REST and apply what happened; False if Bybit has none."""
        order = self.orders.get(link)
        if order is None:
            return False
        if rec is None:
            rec = self.order_record(data_symbol(order.data), link)
            if rec is None:
                return False
        if rec.get("orderId"):
            self.by_id[str(rec["orderId"])] = link
            order.addinfo(orderId=str(rec["orderId"]))
        if self._missing_lots(link, rec) > 0:
            self._fetch_executions(link, rec)
        if link in self.orders:
            self._apply_order(link, rec)
        return True

    def order_record(self, symbol: str, link: str) -> dict | None:
        """Bybit's record of order ``link`` (open orders first, then the history)."""
        rows = self.store.rows("get_open_orders", category=self.category, symbol=symbol,
                               orderLinkId=link, openOnly=0)
        if not rows:
            rows = self.store.rows("get_order_history", category=self.category,
                                   symbol=symbol, orderLinkId=link)
        return rows[0] if rows else None
