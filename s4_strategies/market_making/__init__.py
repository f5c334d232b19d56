"""Market making: the quoting maths, calibration and session timing as plain functions
(numbers in, numbers out, no backtrader), and the fill-model broker.

- ``quotes``: Avellaneda–Stoikov and GLFT quotes, tick rounding, sizes, fill intensity
- ``calibration``: ``sigma``, ``A, kappa`` and the EMA trend estimated from data
- ``estimation``: ``RollingEstimator``, the rolling windows that turn a stream of marks,
  trades or bars into ``sigma``, ``A, kappa`` and a drift (plain numbers, no Cerebro)
- ``instrument``: ``InstrumentParams``, one feed's validated parameters where they differ
- ``session``: time to a daily close and the AS horizon ``tau``
- ``broker``: ``MarketMakingBroker`` (trade-through, queue, intensity fills; imported on
  first use: it and its ``bt_adapter`` are the only parts that need backtrader)

Units are documented in :mod:`s4_strategies.market_making.quotes`: time in seconds, ``sigma``
in price per √second, ``kappa`` in 1/price, ``A`` in fills per second, inventory in lots.
The strategy that places the orders is ``s4_strategies.strategies.AvellanedaStoikovStrategy``.
"""

from __future__ import annotations

import importlib

from .calibration import (
    calibrate_from_bars,
    calibrate_from_excursions,
    calibrate_from_trades,
    ema_lag,
    ema_trend,
    ema_update,
    fit_intensity,
    intensity_from_touches,
    intensity_from_trades,
    realized_sigma,
)
from .estimation import RollingEstimator, drift_from_return
from .instrument import InstrumentParams, instrument_params, param_keys, validate_params
from .quotes import (
    as_quotes,
    as_quotes_rounded,
    drift_shift,
    fill_probability,
    glft_coefficients,
    glft_quotes,
    glft_quotes_rounded,
    intensity,
    linear_quotes,
    optimal_spread,
    positive_quotes,
    quote_sizes,
    reservation_price,
    round_quotes,
)
from .session import close_ramp, parse_session_close, session_tau, time_to_close

_LAZY = {"MarketMakingBroker": "broker", "FILL_MODELS": "broker", "QUEUE_RULES": "broker"}

__all__ = [
    "as_quotes", "as_quotes_rounded", "calibrate_from_bars", "calibrate_from_excursions",
    "calibrate_from_trades", "drift_shift", "ema_lag", "ema_trend", "ema_update",
    "fill_probability", "fit_intensity", "glft_coefficients", "glft_quotes",
    "glft_quotes_rounded", "intensity", "intensity_from_touches", "intensity_from_trades",
    "linear_quotes",
    "optimal_spread", "parse_session_close", "positive_quotes", "quote_sizes", "realized_sigma",
    "reservation_price", "round_quotes", "session_tau", "time_to_close", "close_ramp",
    "RollingEstimator", "drift_from_return", "InstrumentParams", "instrument_params",
    "param_keys", "validate_params", *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
