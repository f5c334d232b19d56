"""One causal feature definition, used by training and by the live indicator alike.

``make_features(df, spec)`` computes every feature for a whole frame at once (vectorised);
``FeatureStream(spec)`` computes the same numbers one bar at a time in O(1) for
backtrader's ``next()``. Both implement the formulas below and a test holds them equal.
Every feature at bar t uses bars <= t only (``tests/test_features.py`` proves it by
changing the future and checking that nothing at or before t moves).

Features (per bar t, ``r_t = log(c_t / c_{t-1})``):

====================  ===================================================================
name                  formula
====================  ===================================================================
``ret_k``             log(c_t / c_{t-k}) for k in ``return_windows``
``log_range``         log(h_t / l_t)
``body``              (c_t - o_t) / (h_t - l_t)   (0 on a flat bar)
``close_pos``         2 (c_t - l_t) / (h_t - l_t) - 1   (0 on a flat bar)
``rv_w``              log(sqrt(mean(r_{t-w+1..t}^2)) + 1e-8), realised volatility
``volume_z``          log1p(v_t) - mean(log1p(v_{t-W+1..t})), W = ``volume_window``
``rsi``               (RSI_n - 50) / 50 with Wilder's smoothing (alpha = 1/n)
``atr``               log(ATR_n / c_t), Wilder's smoothing of the true range
``ma_gap_n``          log(c_t / SMA_n(c)_t) for n in ``ma_windows``
``hour_sin/cos``      the UTC hour of the bar open on the unit circle (``time_features``)
``dow_sin/cos``       the UTC weekday likewise
====================  ===================================================================

The raw features are scale-free; ``Normalizer.fit`` then learns a mean and standard deviation
per feature on the training period only, and both are stored in the checkpoint.

Labels (``make_labels``) look forward on purpose and are only ever used as targets:
forward log returns at several horizons, 3- or 5-class signals from thresholds in units of
trailing volatility, and next-period realised volatility.
"""

from feeds.bartime import bar_spacing

from .batch import make_features
from .labels import LabelSpec, make_labels, signal_values
from .normalize import Normalizer
from .spec import REQUIRED_COLUMNS, FeatureSpec
from .stream import FeatureStream

__all__ = [
    "REQUIRED_COLUMNS", "FeatureSpec", "FeatureStream", "LabelSpec", "Normalizer",
    "bar_spacing", "make_features", "make_labels", "signal_values",
]
