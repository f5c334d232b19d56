"""Checks on the bars that reach a model: values a feature can use, the trained bar spacing.

- ``check_bars(df)``: every price finite and positive, every volume finite and non-negative;
  otherwise ``feeds.DataError`` naming the first bad bar (``bad_bar``, the same words the
  indicator's ``next()`` uses for one bar). One such bar would leave the running features
  (volatility windows, RSI, ATR) NaN for good.
- ``SpacingWatch``: the bar-spacing check for bars that arrive one at a time (``next()``,
  ``resampledata``/``replaydata``, live feeds), where the batch check of
  ``Predictor.check_data`` never sees the whole series.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from feeds.errors import DataError

#: How many spacings between completed bars ``SpacingWatch`` collects before it judges.
SPACINGS_NEEDED = 5
_FIELDS = ("open", "high", "low", "close", "volume")


def bad_bar(when, o, h, l, c, v) -> DataError:
    """The error for one bar that a feature cannot use (``when``: its time, naive = UTC)."""
    ts = pd.Timestamp(when)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    values = " ".join(f"{k}={float(x):g}" for k, x in zip(_FIELDS, (o, h, l, c, v)))
    return DataError(
        f"the bar at {ts} UTC has {values}: prices must be finite and positive and volume "
        "finite and non-negative, or the running features stay NaN from here on; clean the "
        "data first (feeds.clean_ohlcv; feeds.ArrayData and the package's feeds do it)"
    )


def check_bars(df: pd.DataFrame) -> None:
    """Raise ``feeds.DataError`` naming the first bar of ``df`` a feature cannot use."""
    if not len(df):
        return
    with np.errstate(invalid="ignore"):
        prices = df[list(_FIELDS[:4])].to_numpy(dtype=np.float64)
        volume = df["volume"].to_numpy(dtype=np.float64)
        ok = (np.isfinite(prices) & (prices > 0)).all(axis=1) & np.isfinite(volume) & (volume >= 0)
    if not ok.all():
        i = int(np.argmin(ok))
        raise bad_bar(df.index[i], *prices[i], volume[i])


class SpacingWatch:
    """The trained bar spacing, checked on bars as they complete.

    ``closed(t)`` takes the time (seconds) of each completed bar, in order. Once
    ``SPACINGS_NEEDED`` positive spacings are seen, their median must be the checkpoint's
    ``bar_spacing_s`` (``Predictor.check_spacing``: ``CheckpointError`` otherwise, in the
    words of the batch check). The median, like the batch check's over a whole series, lets
    weekend, overnight and holiday gaps among them pass. ``done`` is true once judged, or from
    the start with ``strict=False`` or a checkpoint that does not record its spacing; the
    caller then stops calling (one attribute test per bar).
    """

    def __init__(self, predictor, strict: bool = True):
        self.predictor = predictor
        self.done = not (strict and predictor.meta.get("bar_spacing_s"))
        self._last: float | None = None
        self._gaps: list[float] = []

    def closed(self, t: float) -> None:
        if self._last is not None and t > self._last:
            self._gaps.append(t - self._last)
        self._last = t
        if len(self._gaps) >= SPACINGS_NEEDED:
            self.done = True
            gaps = sorted(self._gaps)
            self.predictor.check_spacing(gaps[len(gaps) // 2])
