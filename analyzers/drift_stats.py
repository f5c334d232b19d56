"""The maths of the drift monitor (``analyzers.drift.DriftMonitor``): plain numpy functions,
no backtrader.

Live values are compared with the training period's mean and standard deviation (the
checkpoint's normaliser: ``std`` with ``ddof=0``, as ``np.nanstd``):

- ``mean_shift``: the standardised mean shift d = (mean_live − mean_train) / std_train. Unlike
  the z-score of the mean, d·sqrt(n), it does not grow with the window: 0.5 means the live
  mean sits half a training standard deviation away, whatever the number of bars;
- ``outside_share``: the share of live values with |x − mean_train| / std_train > ``bound``
  (the training's normaliser clips at 8; a Gaussian is beyond 4 once in 16,000 draws);
- ``std_ratio``: std_live / std_train (1: the same spread);
- ``spearman_ic``: the rank correlation (Spearman, average ranks for ties) of predictions and
  what happened;
- ``hit_rate``: the share of bars where the predicted and realised returns share a sign;
- ``vol_calibration``: the RMS of realised/predicted volatility (1: calibrated) and the share
  of realised returns inside ±z predicted volatilities (about 0.95 for z = 1.96 when
  calibrated and Gaussian).

Arrays may hold NaN (a bar not seen, a feature not defined): every function leaves non-finite
values out. A 2-D array is one column per feature, and then ``mean``/``std`` are per column.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["RollingWindow", "column_stats", "distribution_stats", "hit_rate", "mean_shift",
           "outside_share", "pair_scores", "rankdata", "reference_stats", "spearman_ic",
           "std_ratio", "vol_calibration"]

_NAN = float("nan")


def _columns(x) -> tuple[np.ndarray, bool]:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        return arr[:, None], True
    if arr.ndim != 2:
        raise ValueError(f"expected a 1-D or 2-D array, got shape {arr.shape}")
    return arr, False


def _out(values: np.ndarray, flat: bool):
    return float(values[0]) if flat else values


def _scale(std, width: int) -> np.ndarray:
    """Training std per column; zero, negative or non-finite -> NaN (no comparison)."""
    s = np.broadcast_to(np.asarray(std, dtype=np.float64), (width,)).copy()
    s[~(np.isfinite(s) & (s > 0))] = np.nan
    return s


def column_stats(x) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(n, mean, std)`` per column over finite values (``std`` with ``ddof=0``); mean and
    std are NaN for a column without a finite value."""
    arr, _ = _columns(x)
    ok = np.isfinite(arr)
    n = ok.sum(axis=0)
    xs = np.where(ok, arr, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = xs.sum(axis=0) / n
        dev = np.where(ok, arr - mean, 0.0)
        std = np.sqrt((dev * dev).sum(axis=0) / n)
    return n, mean, std


def mean_shift(x, mean, std):
    """(mean(x) − ``mean``) / ``std``: the live mean in training standard deviations."""
    arr, flat = _columns(x)
    return _out(distribution_stats(arr, mean, std)["shift"], flat)


def outside_share(x, mean, std, bound: float = 4.0):
    """Share of the finite values of ``x`` with |x − ``mean``| / ``std`` > ``bound``."""
    arr, flat = _columns(x)
    return _out(distribution_stats(arr, mean, std, bound)["outside"], flat)


def std_ratio(x, std):
    """std(x) / ``std`` (both ``ddof=0``): 1 when the live spread is the training spread."""
    arr, flat = _columns(x)
    return _out(distribution_stats(arr, 0.0, std)["std_ratio"], flat)


def distribution_stats(x, mean=None, std=None, bound: float = 4.0) -> dict:
    """Everything the monitor reports on a window of values (rows: bars, columns: series).

    Returns arrays, one value per column: ``n`` (finite values), ``mean`` and ``std`` (live),
    and, given the training ``mean`` and ``std``, ``shift`` (``mean_shift``), ``outside``
    (``outside_share`` beyond ``bound``) and ``std_ratio``; these three are NaN without a
    reference, for a column without finite values, or with a training std that is not > 0.
    """
    arr, _ = _columns(x)
    width = arr.shape[1]
    n, live_mean, live_std = column_stats(arr)
    out = {"n": n, "mean": live_mean, "std": live_std}
    if mean is None or std is None:
        nan = np.full(width, np.nan)
        return {**out, "shift": nan, "outside": nan.copy(), "std_ratio": nan.copy()}
    ref_mean = np.broadcast_to(np.asarray(mean, dtype=np.float64), (width,))
    scale = _scale(std, width)
    ok = np.isfinite(arr)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.abs(arr - ref_mean) / scale
        outside = (ok & (z > bound)).sum(axis=0) / n
        out["shift"] = (live_mean - ref_mean) / scale
        out["std_ratio"] = live_std / scale
    out["outside"] = np.where(np.isfinite(scale) & (n > 0), outside, np.nan)
    return out


def reference_stats(x) -> dict:
    """``{"mean", "std"}`` of the finite values of a 1-D series (``ddof=0``): a reference
    entry for a prediction, e.g. of ``pred_return`` over the training period."""
    _, mean, std = column_stats(np.asarray(x, dtype=np.float64).ravel())
    return {"mean": float(mean[0]), "std": float(std[0])}


def rankdata(x) -> np.ndarray:
    """Ranks 1..n of a 1-D array, ties sharing the average of their ranks (as
    ``scipy.stats.rankdata(method="average")``, which training uses; this one runs every bar
    of a live run over the whole window, and is 8x faster on 2,000 values without ties)."""
    arr = np.asarray(x, dtype=np.float64).ravel()
    order = np.argsort(arr)
    xs = arr[order]
    first = np.ones(len(xs), dtype=bool)              # the first of each run of equal values
    np.not_equal(xs[1:], xs[:-1], out=first[1:])
    ranks = np.empty(len(arr))
    if first.all():  # no ties (the usual case for returns): ranks are the sorted positions
        ranks[order] = np.arange(1.0, len(arr) + 1.0)
        return ranks
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], len(xs))
    ranks[order] = ((starts + ends + 1) / 2.0)[np.cumsum(first) - 1]
    return ranks


def _pairs(*cols) -> list[np.ndarray]:
    arrs = [np.asarray(c, dtype=np.float64).ravel() for c in cols]
    if len({len(a) for a in arrs}) != 1:
        raise ValueError(f"arrays of different lengths: {[len(a) for a in arrs]}")
    ok = np.logical_and.reduce([np.isfinite(a) for a in arrs])
    return [a[ok] for a in arrs]


def spearman_ic(x, y) -> float:
    """Spearman rank correlation of ``x`` and ``y`` over pairs where both are finite: the
    Pearson correlation of their average ranks. NaN with fewer than 3 pairs or when either
    side is constant."""
    x, y = _pairs(x, y)
    if len(x) < 3:
        return _NAN
    rx, ry = rankdata(x), rankdata(y)
    rx -= rx.mean()
    ry -= ry.mean()
    den = math.sqrt(float(rx @ rx) * float(ry @ ry))
    return float(rx @ ry) / den if den > 0 else _NAN


def hit_rate(pred, realised) -> float:
    """Share of pairs with sign(``pred``) = sign(``realised``), over pairs where both are
    finite and non-zero (a flat bar or a zero prediction calls no direction); NaN if none."""
    p, r = _pairs(pred, realised)
    called = (p != 0) & (r != 0)
    if not called.any():
        return _NAN
    return float(np.mean(np.sign(p[called]) == np.sign(r[called])))


def vol_calibration(realised, pred_vol, z: float = 1.96) -> tuple[float, float]:
    """``(ratio, coverage)`` of predicted volatilities against the returns that followed.

    ``ratio`` = sqrt(mean((r / pred_vol)²)): the RMS of the standardised returns, 1 when the
    predicted volatility is right on average (below 1: returns calmer than predicted, above:
    wilder), whatever the path of ``pred_vol``. ``coverage`` = share of pairs with
    |r| <= ``z``·pred_vol. Pairs need finite values and ``pred_vol`` > 0; NaN if none.
    """
    r, v = _pairs(realised, pred_vol)
    keep = v > 0
    r, v = r[keep], v[keep]
    if not len(r):
        return _NAN, _NAN
    zs = r / v
    return float(np.sqrt(np.mean(zs * zs))), float(np.mean(np.abs(zs) <= z))


def pair_scores(pred: float, pred_vol: float, realised: float,
                z: float = 1.96) -> tuple[float, float, float]:
    """One (prediction, outcome) pair's share in ``hit_rate`` and ``vol_calibration``:
    ``(hit, z2, covered)`` with ``hit`` 1.0 or 0.0 (NaN unless both are finite and non-zero),
    ``z2`` = (realised / pred_vol)² and ``covered`` 1.0 if |realised| <= ``z``·pred_vol
    (both NaN unless ``pred_vol`` > 0 and both finite). Averaged over pairs, leaving NaN out,
    they are the hit rate, the squared calibration ratio and the coverage; plain floats, so
    that a monitor can keep running sums of them bar by bar."""
    finite = math.isfinite(realised)
    called = finite and math.isfinite(pred) and pred != 0 and realised != 0
    hit = float((pred > 0) == (realised > 0)) if called else _NAN
    if not (finite and math.isfinite(pred_vol) and pred_vol > 0):
        return hit, _NAN, _NAN
    zs = realised / pred_vol
    return hit, zs * zs, float(abs(zs) <= z)


class RollingWindow:
    """The last ``size`` rows of ``width`` values, with running per-column sums so that
    count, mean, std and the share beyond ``bound`` cost O(width) per row, not O(size).

    Sums are kept of z = (x − ``centre``) / ``scale`` over finite values (``centre``: the
    training mean, defaulting to a column's first finite value; ``scale``: the training std,
    defaulting to 1), recomputed exactly from the rows every ``size`` puts so rounding cannot
    build up. ``put(row, key)`` with the ``key`` of the previous put replaces that row (a
    bar delivered again); ``valid=False`` puts nothing new (and blanks a replaced row).
    """

    def __init__(self, size: int, width: int, centre=None, scale=None,
                 bound: float = math.inf):
        self.size, self.width, self.bound = int(size), int(width), float(bound)
        c = np.full(width, np.nan) if centre is None else np.asarray(centre, dtype=np.float64)
        s = np.ones(width) if scale is None else _scale(scale, width)
        self.centre = np.broadcast_to(c, (width,)).astype(np.float64)
        self.scale = np.where(np.isfinite(s), s, 1.0)
        self.rows = np.full((self.size, width), np.nan)
        self.pos = self.count = self.total = self._puts = 0
        self.key = None
        self._s1, self._s2 = np.zeros(width), np.zeros(width)
        self._n, self._out = np.zeros(width), np.zeros(width)
        self._pair = np.empty((2, width))

    def put(self, row, key=None, valid: bool = True) -> None:
        if key is not None and key == self.key and self.count:
            idx = (self.pos - 1) % self.size
        elif not valid:
            return
        else:
            idx, self.key = self.pos, key
            self.pos = (self.pos + 1) % self.size
            self.count = min(self.count + 1, self.size)
            self.total += 1
        pair = self._pair
        pair[0] = self.rows[idx]                       # the row leaving (NaN: none)
        pair[1] = row if valid else np.nan             # the row coming
        unset = np.isnan(self.centre) & np.isfinite(pair[1])
        if unset.any():  # no value of such a column has been summed yet
            self.centre[unset] = pair[1][unset]
        self.rows[idx] = pair[1]
        z, ok = self._z(pair)
        zz = z * z
        self._s1 += z[1] - z[0]
        self._s2 += zz[1] - zz[0]
        self._n += ok[1].astype(np.float64) - ok[0]
        far = np.abs(z) > self.bound
        self._out += far[1].astype(np.float64) - far[0]
        self._puts += 1
        if self._puts >= self.size:
            self._recompute()

    def _z(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = (rows - self.centre) / self.scale
        ok = np.isfinite(z)
        return np.where(ok, z, 0.0), ok

    def _recompute(self) -> None:
        z, ok = self._z(self.values())
        self._s1, self._s2 = z.sum(axis=0), (z * z).sum(axis=0)
        self._n = ok.sum(axis=0).astype(np.float64)
        self._out = (np.abs(z) > self.bound).sum(axis=0).astype(np.float64)
        self._puts = 0

    def values(self) -> np.ndarray:
        """The rows in the window (in ring order, not time order)."""
        return self.rows[: self.count]

    def stats(self) -> dict:
        """Per column: ``n`` (finite values), ``mean``, ``std`` (``ddof=0``), ``z_mean`` and
        ``z_std`` (of (x − centre) / scale) and ``outside`` (share with |z| > bound); NaN
        for a column without values."""
        n = np.rint(self._n)
        with np.errstate(invalid="ignore", divide="ignore"):
            zm = self._s1 / n
            zs = np.sqrt(np.maximum(self._s2 / n - zm * zm, 0.0))
            out = self._out / n
        return {"n": n.astype(int), "mean": self.centre + self.scale * zm,
                "std": self.scale * zs, "z_mean": zm, "z_std": zs, "outside": out}
