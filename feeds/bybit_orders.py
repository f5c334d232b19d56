"""Pure pieces of the Bybit broker: instrument rounding, backtrader order → ``place_order``
arguments, Bybit V5 order and execution records, and the order-rate limiter.

Nothing here talks to the network; :mod:`feeds.bybit_store` and :mod:`feeds.bybit_broker`
do. Bybit's V5 order record (REST ``get_open_orders``/``get_order_history`` and the private
``order`` stream alike)::

    {"orderId": "…", "orderLinkId": "s4-…", "symbol": "BTCUSDT", "side": "Buy",
     "orderType": "Limit", "price": "30000", "qty": "0.010", "orderStatus": "PartiallyFilled",
     "cumExecQty": "0.004", "leavesQty": "0.006", "avgPrice": "30000", "timeInForce": "GTC",
     "rejectReason": "EC_NoError", "reduceOnly": false, "updatedTime": "1672531200000"}

and its execution record (``get_executions`` and the ``execution`` stream)::

    {"execId": "…", "orderId": "…", "orderLinkId": "s4-…", "symbol": "BTCUSDT",
     "side": "Buy", "execPrice": "30000", "execQty": "0.004", "execFee": "0.0072",
     "execType": "Trade", "isMaker": true, "execTime": "1672531200123"}
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

import backtrader as bt

from .errors import ExchangeError

# Order states after which nothing more happens to an order.
TERMINAL = {"Filled", "Cancelled", "Rejected", "PartiallyFilledCanceled", "Deactivated"}
# rejectReason values that mean "cancelled as asked", not "refused by the exchange".
_CANCEL_REASONS = {"", "EC_NoError", "EC_PerCancelRequest", "EC_CancelByUser",
                   "EC_CancelForNoFullFill", "EC_ReCalculatedPrice"}
# retCode Bybit answers for an orderLinkId it has seen already (the order exists).
DUPLICATE_LINK_ID = 110072


@dataclass(frozen=True)
class Instrument:
    """Trading rules of one symbol (``get_instruments_info``): tick, lot step, limits."""

    symbol: str
    tick: Decimal
    qty_step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal = Decimal(0)

    @classmethod
    def from_info(cls, item: dict) -> Instrument:
        """From one entry of ``get_instruments_info(...)["result"]["list"]``."""
        try:
            lot, price = item["lotSizeFilter"], item["priceFilter"]
            step = lot.get("qtyStep") or lot.get("basePrecision")
            return cls(
                symbol=str(item["symbol"]), tick=Decimal(str(price["tickSize"])),
                qty_step=Decimal(str(step)), min_qty=Decimal(str(lot["minOrderQty"])),
                max_qty=Decimal(str(lot.get("maxOrderQty") or lot.get("maxMktOrderQty"))),
                min_notional=Decimal(str(lot.get("minNotionalValue") or lot.get("minOrderAmt")
                                         or 0)),
            )  # fmt: skip
        except (KeyError, TypeError, ArithmeticError) as exc:
            raise ExchangeError(f"unreadable instrument info ({exc!r}): {str(item)[:300]}") from exc

    def round_qty(self, qty: float) -> Decimal:
        """``qty`` down to whole lot steps (an order is never larger than asked)."""
        return _to_step(abs(qty), self.qty_step, ROUND_FLOOR)

    def lots(self, qty) -> int:
        """``|qty|`` in whole lot steps (the nearest: an exchange quantity is on the grid).
        Order and position bookkeeping counts lots, never sums floats (0.068 + 0.104 is
        0.17200000000000001; 68 + 104 lots is 172)."""
        units = Decimal(repr(abs(float(qty)))) / self.qty_step
        return int(units.to_integral_value(rounding=ROUND_HALF_EVEN))

    def from_lots(self, lots: int, sign: float = 1.0) -> float:
        """``lots`` lot steps as a float quantity, signed like ``sign``."""
        qty = float(abs(int(lots)) * self.qty_step)
        return -qty if sign < 0 else qty

    def snap(self, qty: float) -> float:
        """``qty`` on the lot grid, sign kept (a float sum's residue, e.g. -1.4e-17, is 0)."""
        return self.from_lots(self.lots(qty), qty)

    def round_price(self, price: float, side: str) -> Decimal:
        """A limit price onto the tick grid, never more aggressive than asked: a buy rounds
        down, a sell up."""
        return _to_step(price, self.tick, ROUND_FLOOR if side == "Buy" else ROUND_CEILING)


def _to_step(x: float, step: Decimal, rounding) -> Decimal:
    if not math.isfinite(x):
        raise ExchangeError(f"cannot round a non-finite number {x!r} to a step of {step}")
    # The float's shortest repr, so that 0.3 stays 0.3 (not 0.29999…) before flooring.
    units = (Decimal(repr(float(x))) / step).quantize(Decimal(1), rounding=rounding)
    return units * step


def fmt(x: Decimal) -> str:
    """Bybit's decimal string: ``30000``, ``0.012`` (no exponent, no trailing zeros)."""
    return format(x.normalize(), "f")


class OrderRefused(ExchangeError):
    """An order this broker will not send (below the minimum size, unsupported type)."""


def order_request(order, instrument: Instrument, category: str, link_id: str) -> dict:
    """``place_order`` keyword arguments for a backtrader order.

    Market → ``Market``; Limit → ``Limit`` (``GTC``, or ``PostOnly`` with ``postonly=True``,
    or the order's ``tif=`` info: ``IOC``/``FOK``); Stop → a conditional ``Market`` with
    ``triggerPrice`` (``triggerDirection`` 1 for a buy stop, triggered on a rise; 2 for a
    sell stop); StopLimit → a conditional ``Limit`` at ``plimit``. ``reduceonly=True`` sets
    ``reduceOnly``. Raises :class:`OrderRefused` for what Bybit would refuse anyway (size
    below the lot minimum after rounding) or cannot express (trailing orders).
    """
    side = "Buy" if order.isbuy() else "Sell"
    qty = instrument.round_qty(order.size)
    if qty < instrument.min_qty or qty <= 0:
        raise OrderRefused(f"{instrument.symbol}: size {abs(order.size):g} rounds to {qty} "
                           f"(lot step {instrument.qty_step}), below the minimum "
                           f"{instrument.min_qty}")
    if qty > instrument.max_qty:
        raise OrderRefused(f"{instrument.symbol}: size {qty} above the maximum "
                           f"{instrument.max_qty}")
    if order.valid is not None:
        raise OrderRefused(f"{instrument.symbol}: valid= (an expiry) is not supported on Bybit; "
                           "use tif='IOC' or 'FOK', or cancel the order yourself")
    req = {"category": category, "symbol": instrument.symbol, "side": side,
           "qty": fmt(qty), "orderLinkId": link_id}
    info = order.info
    et = order.exectype
    if et in (None, bt.Order.Market, bt.Order.Close):
        req["orderType"] = "Market"
    elif et == bt.Order.Limit:
        req["orderType"] = "Limit"
        req["price"] = fmt(instrument.round_price(order.price, side))
        req["timeInForce"] = "PostOnly" if info.get("postonly") else info.get("tif") or "GTC"
    elif et in (bt.Order.Stop, bt.Order.StopLimit):
        req["triggerPrice"] = fmt(instrument.round_price(order.price, side))
        req["triggerDirection"] = 1 if side == "Buy" else 2
        if et == bt.Order.Stop:
            req["orderType"] = "Market"
        else:
            req["orderType"] = "Limit"
            req["price"] = fmt(instrument.round_price(order.pricelimit, side))
    else:
        raise OrderRefused(f"{instrument.symbol}: {order.getordername()} orders are not "
                           "supported by the Bybit broker (Market, Limit, Stop, StopLimit)")
    if info.get("reduceonly"):
        req["reduceOnly"] = True
    return req


@dataclass(frozen=True)
class Execution:
    """One fill from Bybit (an ``execution`` record), signed by side."""

    exec_id: str
    order_id: str
    link_id: str
    symbol: str
    size: float  # > 0 bought, < 0 sold
    price: float
    fee: float  # paid (> 0) or rebate (< 0), in the settle coin
    time_ms: int
    is_maker: bool
    exec_type: str

    @classmethod
    def from_record(cls, r: dict) -> Execution:
        try:
            qty = float(r["execQty"])
            return cls(str(r["execId"]), str(r.get("orderId", "")), str(r.get("orderLinkId", "")),
                       str(r["symbol"]), qty if r["side"] == "Buy" else -qty,
                       float(r["execPrice"]), float(r.get("execFee") or 0.0),
                       int(r.get("execTime") or 0), bool(r.get("isMaker", False)),
                       str(r.get("execType", "Trade")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ExchangeError(f"unreadable execution ({exc!r}): {str(r)[:300]}") from exc


def order_shape(record: dict) -> tuple[int, float | None, float | None]:
    """backtrader's ``(exectype, price, pricelimit)`` of a V5 order record: the inverse of
    :func:`order_request` (an order of an earlier run, taken over after a restart)."""
    def num(key):
        v = record.get(key)
        return float(v) if v not in (None, "", "0") else None

    trigger, limit = num("triggerPrice"), num("price")
    if record.get("orderType") == "Limit":
        if trigger is not None:
            return bt.Order.StopLimit, trigger, limit
        return bt.Order.Limit, limit, None
    if trigger is not None:
        return bt.Order.Stop, trigger, None
    return bt.Order.Market, None, None


def order_outcome(record: dict) -> tuple[str, str]:
    """What an order record means for the backtrader order: ``("accepted" | "open" |
    "filled" | "cancelled" | "rejected", reason)``."""
    status = str(record.get("orderStatus", ""))
    reason = str(record.get("rejectReason") or "")
    if status == "Rejected":
        return "rejected", reason or "Rejected"
    if status in ("Cancelled", "PartiallyFilledCanceled", "Deactivated"):
        if reason not in _CANCEL_REASONS:  # e.g. EC_PostOnlyWillTakeLiquidity
            return "rejected", reason
        return "cancelled", reason
    if status == "Filled":
        return "filled", ""
    if status in ("New", "Untriggered", "Triggered", "Created", "Active"):
        return "accepted", ""
    return "open", ""  # PartiallyFilled


class RateLimiter:
    """At most ``rate`` calls per ``per`` seconds (a token bucket), waiting with ``sleep``.

    Bybit limits order create/amend/cancel per UID and symbol (10 a second on most linear
    contracts); past it the call fails with retCode 10006. Spacing calls here keeps the
    broker under the limit instead of leaning on pybit's retry.
    """

    def __init__(self, rate: float = 10.0, per: float = 1.0, clock=time.monotonic,
                 sleep=time.sleep):
        if rate <= 0 or per <= 0:
            raise ValueError("RateLimiter needs rate > 0 and per > 0")
        self.capacity = float(rate)
        self.fill = float(rate) / float(per)  # tokens a second
        self.clock, self.sleep = clock, sleep
        self.tokens = self.capacity
        self.last = None
        self.waited = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping until there is one; returns the seconds waited."""
        with self._lock:
            now = self.clock()
            if self.last is not None:
                self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.fill)
            self.last = now
            wait = 0.0
            if self.tokens < 1.0:
                wait = (1.0 - self.tokens) / self.fill
                self.sleep(wait)
                self.waited += wait
                self.tokens = 1.0
                self.last = now + wait
            self.tokens -= 1.0
            return wait
