"""Fees, in one place: Bybit's maker/taker rates and the backtrader commission schemes.

- ``BYBIT_TAKER``, ``BYBIT_MAKER``: Bybit USDT linear perpetual, base tier, fractions of
  notional per side. Every default fee in the project refers to these two constants.
- ``PercentCommission``: one rate on every fill, fractional sizes (directional and
  portfolio strategies: market orders and triggered stops pay the taker rate).
- ``MakerTakerCommInfo``: maker on passive fills, taker on the rest (market making; the
  ``MarketMakingBroker`` tells it which each fill was).
- ``set_bybit_fees(broker)``: install ``PercentCommission`` at the taker rate.
"""

from __future__ import annotations

import backtrader as bt

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
