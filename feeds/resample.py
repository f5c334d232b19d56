"""``cerebro.resampledata`` and ``cerebro.replaydata`` on this package's feeds: the bars
pandas gives, on the feeds' clock.

Our feeds stamp a bar with its **open** (``feeds.bartime``); backtrader's resampler buckets
by a bar's stamp as if it were the bar's **close** (its own feeds' convention), so an hourly
bar opening at 03:00 would land in the 4-hour bar that opens at 04:00, and the first "4 h"
bar would hold one hour. Every feed here (``ArrayData`` and its subclasses, and their
clones, which ``resampledata`` makes when the data is already in the cerebro) resamples and
replays through :class:`BarOpenResampler` / :class:`BarOpenReplayer` instead, with no
change to the calls::

    data = feeds.EmbeddedData(name="bybit:BTCUSDT:60")
    cerebro.adddata(data)
    cerebro.resampledata(data, timeframe=bt.TimeFrame.Minutes, compression=240)

What they do:

- **Bins.** A bar belongs to the bin its open lies in, closed on the left: the bars of
  ``df.resample("4h")`` / ``df.resample("1D")`` of the open-stamped frame, with the same
  open, high, low, close and volume (``tests/test_resample.py`` holds them equal, from 1 h
  and 1 min bars, resampled and replayed). Inside backtrader's machinery each intraday bar
  is handed over at its close (open + bar length) and days end at midnight UTC; bins of a
  week or longer (calendar bins) and bins of daily or tick input need no shift.
- **Stamps.** A resampled or replayed bar is stamped on the clock of the bars it is made
  of: with the open of the last base bar of its bin (bin open + bin length − base bar
  length; the bin's last base bar when the bin is cut short or longer than a day). So a
  bar is complete at its stamp plus one *base* bar for every data of a cerebro, native or
  resampled, and cerebro hands the 4-hour bar to the strategy together with the hourly bar
  that completes it, never before (a stamp at the bin open would hand it out three hours
  early: look-ahead). :func:`bar_open` gives a bar's bin open (what the time features of
  a model trained on ``df.resample`` frames want).

The base bar length comes from the feed's ``timeframe``/``compression``, or, for an
``ArrayData`` left at backtrader's default (``Days``, 1), from the spacing of its frame.
"""

from __future__ import annotations

import math

import backtrader as bt
import pandas as pd
from backtrader.dataseries import _Bar
from backtrader.feed import DataClone
from backtrader.resamplerfilter import Replayer, Resampler

from .bartime import SECONDS_PER_DAY, bar_open, bar_spacing, epoch_to_num, num_to_epoch  # noqa: F401

TF = bt.TimeFrame
_UNIT_S = {TF.MicroSeconds: 1e-6, TF.Seconds: 1.0, TF.Minutes: 60.0, TF.Days: SECONDS_PER_DAY}


def timeframe_of(spacing: pd.Timedelta) -> tuple[int, int]:
    """backtrader's ``(timeframe, compression)`` for bars ``spacing`` apart."""
    s = spacing.total_seconds()
    if s <= 0:
        return TF.Ticks, 1
    if s < 60 or s % 60:
        return TF.Seconds, max(int(round(s)), 1)
    if s < SECONDS_PER_DAY:
        return TF.Minutes, int(s // 60)
    if s < 7 * SECONDS_PER_DAY:
        return TF.Days, int(s // SECONDS_PER_DAY)
    return (TF.Weeks, 1) if s < 28 * SECONDS_PER_DAY else (TF.Months, 1)


def base_timeframe(data) -> tuple[int, int]:
    """The ``(timeframe, compression)`` of the bars ``data`` (or the feed it clones) serves:
    its params, or for a feed left at the default ``(Days, 1)`` whose frame is at hand, the
    spacing of that frame (ticks for tick feeds)."""
    src = data.data if getattr(data, "_clone", False) else data
    tf, comp = src.p.timeframe, src.p.compression
    if getattr(src, "_serves_ticks", False):
        return TF.Ticks, 1
    if (tf, comp) == (TF.Days, 1):
        frame = getattr(src.p, "dataframe", None)
        frame = src.p.dataname if frame is None else frame
        if isinstance(frame, pd.DataFrame) and len(frame) > 1 \
                and isinstance(frame.index, pd.DatetimeIndex):
            return timeframe_of(bar_spacing(frame.index))
    return tf, comp


def _length_s(tf: int, comp: int) -> float:
    """A bar's length in seconds (0 for ticks; that of a day for days and longer)."""
    if tf == TF.Ticks:
        return 0.0
    return _UNIT_S.get(tf, SECONDS_PER_DAY) * comp


def _add_s(num: float, seconds: float) -> float:
    """``num`` (a backtrader float date) plus ``seconds``, exact to the millisecond (so that
    a bar closing at midnight lands exactly on the day boundary)."""
    ms = round(num_to_epoch(num) * 1000.0) + round(seconds * 1000.0)
    return epoch_to_num(ms / 1000.0)


class _StampedBar(_Bar):
    """The bar being built, delivered with its stamp on the base bars' clock."""

    def __init__(self, owner, maxdate=False):
        self._owner = owner
        self._last_open = None
        super().__init__(maxdate=maxdate)

    def bstart(self, maxdate=False):
        super().bstart(maxdate=maxdate)
        self._last_open = None

    def bupdate(self, data, reopen=False):
        ret = super().bupdate(data, reopen=reopen)
        self._last_open = self._owner._input_open
        return ret

    def lvalues(self):
        values = super().lvalues()
        values[list(self.keys()).index("datetime")] = self._owner._stamp(self)
        return values


class _BarOpen:
    """What :class:`BarOpenResampler` and :class:`BarOpenReplayer` add to backtrader's."""

    def __init__(self, data, **kwargs):
        tf, comp = base_timeframe(data)
        data._timeframe, data._compression = tf, comp  # backtrader's own checks read them
        self._base_s = _length_s(tf, comp)
        super().__init__(data, **kwargs)
        # intraday bars binned by the day or less: hand each over at its close
        self._shift_s = self._base_s if (0 < self._base_s < SECONDS_PER_DAY
                                         and self.p.timeframe <= TF.Days) else 0.0
        self._bin_s = _length_s(self.p.timeframe, self.p.compression)
        self._input_open = None
        self.bar = _StampedBar(self, maxdate=True)
        data._s4_binning = self

    def __call__(self, data, fromcheck=False, forcedata=None):
        if not fromcheck:
            self._input_open = data.lines.datetime[0]
            if self._shift_s:
                data.lines.datetime[0] = _add_s(self._input_open, self._shift_s)
        return super().__call__(data, fromcheck=fromcheck, forcedata=forcedata)

    def _eosset(self):
        if not self._shift_s:
            return super()._eosset()
        if self._nexteos is None:  # the day ends at the next midnight UTC (bar closes)
            self._nextdteos = float(math.ceil(self.data.lines.datetime[0] - 1e-9))
            self._nexteos = bt.num2date(self._nextdteos)

    def _calcadjtime(self, greater=False):
        if self._shift_s and self.p.timeframe == TF.Days:  # a day's bin ends at midnight
            return self._lastdteos if self._nexteos is None else self._nextdteos
        return super()._calcadjtime(greater=greater)

    def _stamp(self, bar) -> float:
        if self._shift_s:  # backtrader's stamp is the bin's close: back to the clock
            return _add_s(bar.datetime, -self._shift_s)
        return bar._last_open if bar._last_open is not None else bar.datetime

    def open_of(self, stamp: float) -> float:
        """The bin open of a bar stamped ``stamp`` (the stamp itself where bins are not of
        a fixed length: weeks and longer, ticks, daily input)."""
        if not self._shift_s:
            return stamp
        close = _add_s(stamp, self._shift_s)
        start = _add_s(close, -self._bin_s)
        if self.p.timeframe < TF.Days:  # backtrader's intraday bins restart at midnight
            start = max(start, float(math.floor(close - 1e-9)))
        return start


class BarOpenResampler(_BarOpen, Resampler):
    """``Resampler`` for open-stamped bars (see the module docstring)."""


class BarOpenReplayer(_BarOpen, Replayer):
    """``Replayer`` for open-stamped bars (see the module docstring)."""


def _resample(data, **kwargs):
    data.addfilter(BarOpenResampler, **kwargs)


def _replay(data, **kwargs):
    data.addfilter(BarOpenReplayer, **kwargs)


class BarOpenClone(DataClone):
    """The clone ``cerebro.resampledata`` makes of one of our feeds already in the cerebro
    (resampled and replayed as the feed itself is)."""

    def resample(self, **kwargs):
        _resample(self, **kwargs)

    def replay(self, **kwargs):
        _replay(self, **kwargs)

    def clone(self, **kwargs):
        return BarOpenClone(dataname=self, **kwargs)
