"""Fees, in one place: Bybit's maker/taker rates and the backtrader commission schemes.

- ``BYBIT_TAKER``, ``BYBIT_MAKER``: Bybit USDT linear perpetual, base tier, fractions of
  notional per side. Every default fee in the project refers to these two constants.
- ``PercentCommission``: one rate on every fill, fractional sizes (directional and
  portfolio strategies: market orders and triggered stops pay the taker rate).
- ``MakerTakerCommInfo``: maker on passive fills, taker on the rest (market making; the
  ``MarketMakingBroker`` tells it which each fill was).
- ``set_bybit_fees(broker)``: install ``PercentCommission`` at the taker rate.
- ``apply_fees(broker, datas, fees)``: what the strategies' ``fees`` param does: ``"bybit"``
  installs Bybit's taker fee only where the broker still has backtrader's default (zero)
  commission, so a commission the user set is never replaced. The default is recognised
  by a mark it carries, so this also holds in ``cerebro.optstrategy``'s worker processes,
  which receive a pickled copy of the broker.
- ``target_size(broker, data, weight)``: the fractional position size worth ``weight`` of
  the portfolio, whatever commission scheme is installed (backtrader's ``getsize`` rounds
  down to whole units, so without this 10,000 USDT buys no BTC at all).
"""

from __future__ import annotations

import logging

import backtrader as bt

log = logging.getLogger(__name__)

#: Values of the strategies' ``fees`` param.
FEE_CHOICES = ("bybit", None)

#: Bybit USDT perpetual (linear) base tier, as fractions of notional.
BYBIT_TAKER = 0.00055
BYBIT_MAKER = 0.0002

MAKER, TAKER = "maker", "taker"


class PercentCommission(bt.CommInfoBase):
    """A percentage of traded notional per side (``commission=0.00055`` is 0.055 %).

    Shorting is allowed and margin is not modelled (``leverage`` scales buying power only),
    as for a fully collateralised perpetual.
    """

    params = dict(commission=BYBIT_TAKER, stocklike=True, commtype=bt.CommInfoBase.COMM_PERC,
                  percabs=True, leverage=1.0)

    def getsize(self, price, cash):
        """Fractional sizes, as crypto trades (backtrader's default rounds down to whole units,
        so 45,000 USDT of BTC at 60,000 would be no BTC at all)."""
        return self.p.leverage * cash / price


def set_bybit_fees(broker, taker: float = BYBIT_TAKER, leverage: float = 1.0, name=None) -> None:
    """Charge Bybit's taker fee on every fill (market orders and triggered stops)."""
    broker.addcommissioninfo(PercentCommission(commission=taker, leverage=leverage), name=name)


#: Attribute that marks backtrader's default commission object. ``optstrategy`` (and any
#: multiprocessing) pickles the broker into worker processes, where the default arrives as
#: a copy: identity no longer tells it apart from a commission the user set, the mark does
#: (it travels in the object's ``__dict__``).
_DEFAULT_MARK = "_s4_backtrader_default"


def _backtrader_default(broker_cls):
    """The commission object a broker class holds until someone sets one (backtrader's
    zero fee), marked; ``None`` for a class without that param."""
    params = getattr(broker_cls, "params", None)
    try:
        default = params._getkwargsdefault().get("commission")
    except AttributeError:  # not a backtrader broker
        return None
    if default is not None and not getattr(default, _DEFAULT_MARK, False):
        setattr(default, _DEFAULT_MARK, True)
    return default


# Mark it now, in the process that builds the cerebro, before optstrategy pickles a broker.
_backtrader_default(bt.brokers.BackBroker)


def has_default_commission(broker, data=None) -> bool:
    """True while ``data`` (or the broker's default, ``data=None``) is charged backtrader's
    default commission, i.e. nobody called ``setcommission``/``addcommissioninfo`` for it;
    also in ``optstrategy``'s worker processes, where the broker is an unpickled copy."""
    default = _backtrader_default(type(broker))
    if default is None:
        return False
    current = broker.getcommissioninfo(data) if data is not None else broker.comminfo.get(None)
    return current is default or bool(getattr(current, _DEFAULT_MARK, False))


def apply_fees(broker, datas, fees, taker: float = BYBIT_TAKER) -> list:
    """The strategies' ``fees`` param: ``None`` leaves the broker alone; ``"bybit"`` charges
    Bybit's taker fee to the datas still on backtrader's default commission and keeps any
    commission the user set (logged either way). Returns the names of the datas it set."""
    if fees not in FEE_CHOICES:
        raise ValueError(f"fees={fees!r}: use 'bybit' (Bybit taker fee where no commission "
                         "was set) or None (leave the broker's commission as it is)")
    if fees is None:
        return []
    names = [getattr(d, "_name", "") or f"data{i}" for i, d in enumerate(datas)]
    charged = [n for d, n in zip(datas, names) if has_default_commission(broker, d)]
    kept = [n for n in names if n not in charged]
    if charged:  # they all fall back on the broker's default: replace backtrader's zero fee
        set_bybit_fees(broker, taker=taker)
        log.info("fees='bybit': Bybit taker fee %.3f%% per side on %s", taker * 100,
                 ", ".join(charged))
    if kept:
        log.info("fees='bybit': kept the commission already set for %s", ", ".join(kept))
    return charged


def target_size(broker, data, weight: float, price: float | None = None) -> float:
    """Signed fractional size that makes ``data``'s position ``weight`` of the portfolio value
    at ``price`` (default: the current close). Stock-like schemes size by price, futures-like
    ones by margin, as backtrader's ``order_target_percent`` does, without its rounding down."""
    ci = broker.getcommissioninfo(data)
    price = data.close[0] if price is None else price
    unit = price if ci.stocklike else ci.get_margin(price)
    if unit is None or not unit > 0:  # no price (NaN) or no margin: no position
        return 0.0
    return weight * broker.getvalue() * ci.get_leverage() / unit


class MakerTakerCommInfo(bt.CommInfoBase):
    """Maker/taker commission (a negative rate is a rebate).

    Params:
      - ``maker`` (0.0002 = 0.02 %), ``taker`` (0.00055 = 0.055 %): Bybit linear defaults,
        as fractions of notional;
      - ``per_contract`` (``False``): when ``True`` ``maker``/``taker`` are a fixed amount per
        contract per side (futures: ``futures(round_turn=14.0)`` charges 7 a side).

    ``MarketMakingBroker`` sets ``liquidity`` to ``"maker"`` or ``"taker"`` for each fill;
    under another broker every fill is charged ``maker``.
    """

    params = (
        ("maker", BYBIT_MAKER),
        ("taker", BYBIT_TAKER),
        ("per_contract", False),
        ("stocklike", True),
        ("commtype", bt.CommInfoBase.COMM_PERC),
        ("percabs", True),
    )

    liquidity = MAKER

    def rate(self, liquidity: str | None = None) -> float:
        liq = liquidity or self.liquidity
        return self.p.taker if liq == TAKER else self.p.maker

    def _getcommission(self, size, price, pseudoexec):
        rate = self.rate()
        if self.p.per_contract:
            return abs(size) * rate
        notional = abs(size) * price
        if not self._stocklike:
            notional *= self.p.mult
        return notional * rate

    @classmethod
    def futures(cls, round_turn: float = 14.0, mult: float = 1.0, margin: float = 1000.0,
                **kwargs):
        """Futures-like (margin, mark-to-market) with a fixed fee of ``round_turn/2`` a side."""
        side = round_turn / 2.0
        return cls(maker=side, taker=side, per_contract=True, stocklike=False, mult=mult,
                   margin=margin, commtype=bt.CommInfoBase.COMM_FIXED, **kwargs)
