"""Exchange fee schedules as backtrader commission schemes (fractional crypto sizes)."""

from __future__ import annotations

import backtrader as bt

#: Bybit USDT perpetual (linear) base tier, as fractions of notional.
BYBIT_TAKER = 0.00055
BYBIT_MAKER = 0.0002


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
