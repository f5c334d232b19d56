"""Mixed windows: training series the model has never seen, with the same linear dependences.

A training window is, with probability ``p``, replaced by a mixture of its bars with the bars
of a second training window that starts at the same hour of the week (same time features):

    r_t  = a r1_t + b r2_t,   a = cos θ, b = sin θ,   θ ~ U(π/8, 3π/8)     (log returns)
    gap_t = a gap1_t + b gap2_t                  (log open / previous close)
    wick_t = a wick1_t + b wick2_t               (log high / max(open, close), and the low's)
    log v_t = a² log v1_t + b² log v2_t          (volume: the weights sum to one)

and the features and labels are computed from the mixed bars by the same code as always.
With a² + b² = 1 every linear dependence of the returns keeps its coefficient: if
``r_t = ρ r_{t-k} + e_t`` holds for both windows, ``r_t = ρ r_{t-k} + (a e1_t + b e2_t)``
holds for the mixture with noise of the same variance; the autocorrelation at every lag,
the hour-of-week means and the volatility level are those of the data. What changes is what
a model could recall: over ~n²/period pairs and a continuum of angles no training window
repeats. (Nonlinear structure is diluted: the mixture is closer to Gaussian and its
volatility clustering is the average of the two windows'. ``p`` keeps the rest real.)
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..features import make_features, make_labels

THETA = (math.pi / 8, 3 * math.pi / 8)
#: Partners start a whole number of these periods apart (whichever is the longest that
#: leaves at least MIN_PARTNERS candidates), so that hour-of-day and day-of-week match.
PERIODS = (pd.Timedelta(days=7), pd.Timedelta(days=1))
MIN_PARTNERS = 16


def mix_bars(o1, h1, l1, c1, v1, o2, h2, l2, c2, v2, a: float, b: float):
    """The mixed bars (module doc) of two equally long runs of OHLCV bars, each given as
    arrays (n,); the first close of the mixture is ``c1[0]``. Returns o, h, l, c, v (n,)."""
    lc1, lc2 = np.log(c1), np.log(c2)  # (n,)
    r = a * np.diff(lc1) + b * np.diff(lc2)  # (n-1,)
    lc = lc1[0] + np.concatenate([[0.0], np.cumsum(r)])  # (n,)
    gap = a * (np.log(o1[1:]) - lc1[:-1]) + b * (np.log(o2[1:]) - lc2[:-1])  # (n-1,)
    lo_ = np.concatenate([[lc1[0] + math.log(o1[0] / c1[0])], lc[:-1] + gap])  # (n,)

    def wicks(o, h, low, c):
        lo, lcl = np.log(o), np.log(c)
        return np.log(h) - np.maximum(lo, lcl), np.minimum(lo, lcl) - np.log(low)  # (n,) x2

    up1, dn1 = wicks(o1, h1, l1, c1)
    up2, dn2 = wicks(o2, h2, l2, c2)
    top, bottom = np.maximum(lo_, lc), np.minimum(lo_, lc)  # (n,)
    high = np.exp(top + a * up1 + b * up2)
    low = np.exp(bottom - a * dn1 - b * dn2)
    volume = np.exp(a * a * np.log(np.maximum(v1, 1e-12)) + b * b * np.log(np.maximum(v2, 1e-12)))
    return np.exp(lo_), high, low, np.exp(lc), volume


def partner_period(index: pd.DatetimeIndex, span: int) -> int:
    """Bars between admissible partner starts: a week (or a day) in bars when the bars divide
    it and a span of ``span`` starts holds at least MIN_PARTNERS of them; else 1."""
    from feeds.bartime import bar_spacing

    step = bar_spacing(index)
    for period in PERIODS:
        bars = period / step
        if bars == int(bars) and span // int(bars) >= MIN_PARTNERS:
            return int(bars)
    return 1


class MixedWindows:
    """Training windows for ``train_model``: ``draw(starts, seq_len)`` -> the (x, y, mask)
    of the plain windows, each replaced with probability ``p`` by a mixture with a partner
    window (module doc). ``lo``/``hi``: the training period's admissible starts and its end
    (no window or partner reads a label past ``hi`` + the label horizon, as a plain one)."""

    def __init__(self, df, fspec, lspec, norm, scale_labels, lo: int, hi: int, p: float,
                 rng: np.random.Generator, plain):
        self.ohlcv = [df[k].to_numpy(dtype=np.float64) for k in
                      ("open", "high", "low", "close", "volume")]
        self.index, self.fspec, self.lspec, self.norm = df.index, fspec, lspec, norm
        self.scale_labels, self.plain = scale_labels, plain
        self.lo, self.hi, self.p, self.rng = max(lo, fspec.warmup), hi, p, rng
        self.period = partner_period(df.index, hi - self.lo)

    def window(self, s: int, s2: int, n: int, theta: float):
        """Features (n, F), labels {k: (n, ...)} of the window of n bars at ``s`` mixed at
        angle ``theta`` with the one at ``s2`` (each with its feature warm-up before it)."""
        w, hz = self.fspec.warmup, self.lspec.max_horizon
        seg1, seg2 = slice(s - w, s + n + hz), slice(s2 - w, s2 + n + hz)
        cols = mix_bars(*(a[seg1] for a in self.ohlcv), *(a[seg2] for a in self.ohlcv),
                        math.cos(theta), math.sin(theta))
        frame = pd.DataFrame(dict(zip(("open", "high", "low", "close", "volume"), cols)),
                             index=self.index[seg1])
        x = np.nan_to_num(self.norm.transform(make_features(frame, self.fspec).to_numpy()),
                          nan=0.0)[w:w + n]  # (n, F)
        y = self.scale_labels(make_labels(frame, self.lspec))
        return x, {k: np.array(v[w:w + n]) for k, v in y.items()}  # writable copies

    def partner(self, s: int, n: int) -> int:
        last = min(self.hi, len(self.index) - self.lspec.max_horizon) - n  # inclusive
        first = self.lo + (s - self.lo) % self.period
        k = (last - first) // self.period + 1
        return s if k < 1 else first + self.period * int(self.rng.integers(k))

    def __call__(self, starts, n: int):
        x, y, mask = self.plain(starts, n)  # tensors; mixed rows are overwritten
        import torch

        for i, s in enumerate(starts):
            if s < self.lo or self.rng.random() >= self.p:
                continue
            xm, ym = self.window(int(s), self.partner(int(s), n), n, self.rng.uniform(*THETA))
            x[i] = torch.as_tensor(xm, dtype=x.dtype)
            for k, v in ym.items():
                y[k][i] = torch.as_tensor(v, dtype=y[k].dtype)
        return x, y, mask
