"""``DriftMonitor``: is the model still looking at the world it was trained on, and is it
still right about it?

::

    ref = reference_from_predictor(predictor, ic=0.04)   # training mean/std of the features
    cerebro.addanalyzer(DriftMonitor, _name="drift", indicator="s4", reference=ref)
    res = cerebro.run()[0].analyzers.drift.get_analysis()
    res["features"]["rv_24"]["shift"], res["skill"]["ic"], res["warnings"]

Over the last ``window`` bars it compares the indicator's raw features and predictions with
their training statistics (standardised mean shift, share of values far outside the training
range, ratio of standard deviations; ``analyzers.drift_stats``) and scores the predictions
against what happened: the prediction made at bar t is paired with the log return from bar
t's close to bar t+1's, once bar t+1 is there (never earlier), for the rolling rank IC, hit
rate and volatility calibration.

A check that fails starts an *episode*: one warning (``logging`` at WARNING, the
``on_warning`` callback, an entry in ``get_analysis()["warnings"]``); it ends, logged at
INFO and stamped ``recovered``, once the check has passed for ``recover_bars`` bars. A bar
that a feed delivers several times (the same ``len(data)``) replaces its earlier version
instead of counting twice; from ``replaydata``, whose bars grow update by update, a bar is
judged once the next one begins (or the run stops), on its final values.
"""

from __future__ import annotations

import logging
import math

import backtrader as bt
import numpy as np

from feeds.bartime import num_to_index

from .drift_stats import RollingWindow, pair_scores, spearman_ic

__all__ = ["DriftMonitor", "make_reference", "reference_from_predictor"]

log = logging.getLogger(__name__)

PREDICTIONS = ("pred_return", "pred_vol")
_NAN = float("nan")
_MESSAGES = {
    "shift": "{label}: live mean {value:+.2f} training std from the training mean over {n} "
             "bars (limit ±{limit:g})",
    "outside": "{label}: {value:.1%} of {n} bars beyond ±{bound:g} training std "
               "(limit {limit:.1%})",
    "std_ratio": "{label}: live std {value:.2f}x the training std over {n} bars "
                 "(limit {lo:.2g}x to {limit:g}x)",
    "ic": "rolling rank IC {value:+.3f} over {n} scored bars is below {limit:g}",
    "vol_ratio": "realised returns are {value:.2f}x the predicted volatility (RMS over {n} "
                 "bars; 1 = calibrated, limit {lo:.2g}x to {limit:g}x); {coverage:.1%} "
                 "within ±{z:g} predicted vol",
}


def make_reference(names, mean, std, predictions: dict | None = None,
                   ic: float | None = None) -> dict:
    """The ``reference`` param of :class:`DriftMonitor` from training statistics.

    ``names``, ``mean``, ``std``: the raw features in the indicator's order, with their
    training-period mean and standard deviation (as the checkpoint's normaliser holds them);
    ``predictions``: optional ``{"pred_return": {"mean", "std"}, "pred_vol": {...}}`` (e.g.
    ``drift_stats.reference_stats`` of the training-period predictions); ``ic``: optional
    validation IC, reported beside the live one.
    """
    names = [str(n) for n in names]
    mean = [float(m) for m in mean]
    std = [float(s) for s in std]
    if not len(names) == len(mean) == len(std):
        raise ValueError(f"reference: {len(names)} names, {len(mean)} means, {len(std)} stds")
    ref = {"features": {"names": names, "mean": mean, "std": std}}
    if predictions:
        unknown = set(predictions) - set(PREDICTIONS)
        if unknown:
            raise ValueError(f"reference predictions: unknown {sorted(unknown)}; "
                             f"known: {list(PREDICTIONS)}")
        ref["predictions"] = {k: {"mean": float(v["mean"]), "std": float(v["std"])}
                              for k, v in predictions.items()}
    if ic is not None:
        ref["ic"] = float(ic)
    return ref


def reference_from_predictor(predictor, predictions: dict | None = None,
                             ic: float | None = None) -> dict:
    """``make_reference`` from a loaded model (``s4_strategies.load_model``): feature names
    from ``predictor.feature_spec.names``, training mean and std from
    ``predictor.normalizer``."""
    return make_reference(predictor.feature_spec.names, predictor.normalizer.mean,
                          predictor.normalizer.std, predictions=predictions, ic=ic)


def _compare(st: dict, ref_ok: np.ndarray) -> dict:
    """A window's statistics with the comparisons to the reference (NaN where it has none):
    with centre = training mean and scale = training std, z's mean is the mean shift and
    z's std the std ratio."""
    nan = np.nan
    return {"n": st["n"], "mean": st["mean"], "std": st["std"],
            "shift": np.where(ref_ok, st["z_mean"], nan),
            "outside": np.where(ref_ok, st["outside"], nan),
            "std_ratio": np.where(ref_ok, st["z_std"], nan)}


def _lines(obj) -> bool:
    try:
        aliases = obj.lines.getlinealiases()
    except AttributeError:
        return False
    return all(k in aliases for k in PREDICTIONS)


class DriftMonitor(bt.Analyzer):
    """Feature and prediction drift against the training statistics, and the realised skill
    of the predictions, over a rolling window; warns when they leave the trained range.

    Params (a threshold set to ``None`` turns its check off):
      - ``indicator``: the predicting indicator, with lines ``pred_return`` (predicted log
        return over the next bar) and ``pred_vol`` (predicted std of the next bar's log
        return) and, optionally, a ``features`` property (this bar's raw feature vector, or
        ``None``); bars where ``pred_return`` is NaN (warm-up) are skipped. An object, the
        name of a strategy attribute holding it (e.g. ``"s4"``, looked up at start), or
        ``None``: the strategy's first indicator with those lines
      - ``reference``: training statistics, ``{"features": {"names", "mean", "std"},
        "predictions": {"pred_return": {"mean", "std"}, "pred_vol": {...}}, "ic": float}``,
        every part optional (``make_reference``, ``reference_from_predictor``)
      - ``data``: the feed whose closes score the predictions (a feed or its name; default
        the indicator's data when it is a feed, else the strategy's first data)
      - ``window``: bars in the rolling window
      - ``min_bars``: values (or scored pairs) a window needs before any check runs
      - ``every``: evaluate statistics and checks every this many bars (1: each bar)
      - ``bound``: |x − mean| / std beyond which a value counts as outside the trained range
      - ``shift_warn``: warn when |standardised mean shift| exceeds it
      - ``outside_warn``: warn when the share of values outside ``bound`` exceeds it
      - ``std_ratio``: warn when live std / training std leaves [1/std_ratio, std_ratio]
      - ``min_ic``: warn when the rolling rank IC falls below it
      - ``vol_ratio``: warn when the volatility calibration ratio (RMS over the window of
        realised return / predicted vol, bar by bar; 1 = calibrated) leaves
        [1/vol_ratio, vol_ratio]
      - ``coverage_z``: half-width, in predicted vols, of the band whose coverage is reported
      - ``recover_bars``: bars a failed check must pass again before its episode ends
      - ``on_warning``: callable receiving each new warning dict

    ``get_analysis()``: ``bars`` (bars seen), ``warm_bars`` (bars with predictions),
    ``features`` and ``predictions`` (``{name: {"n", "mean", "std", "shift", "outside",
    "std_ratio"}}``, live mean/std and comparisons with the reference, NaN without one),
    ``skill`` (``n`` scored pairs in the window, ``scored`` in all, ``ic``, ``ic_reference``,
    ``hit_rate``, ``vol_ratio``, ``coverage``), ``warnings`` (``time`` UTC Timestamp,
    ``kind`` feature/prediction/ic/calibration, ``name``, ``check``, ``value``, ``limit``,
    ``message``, ``recovered``: time or ``None``) and ``active`` (episodes still open).
    """

    params = dict(indicator=None, reference=None, data=None, window=500, min_bars=50, every=1,
                  bound=4.0, shift_warn=0.5, outside_warn=0.05, std_ratio=2.0, min_ic=0.0,
                  vol_ratio=2.0, coverage_z=1.96, recover_bars=50, on_warning=None)

    # -- setting up ----------------------------------------------------------------------
    def start(self):
        if int(self.p.window) < 2 or int(self.p.every) < 1:
            raise ValueError("DriftMonitor: window must be >= 2 and every >= 1")
        self._ind = self._find_indicator()
        self._feed = self._find_data()
        ref = self.p.reference or {}
        feats = ref.get("features") or {}
        self._fmean = np.asarray(feats.get("mean", ()), dtype=np.float64)
        self._fstd = np.asarray(feats.get("std", ()), dtype=np.float64)
        self._names = [str(n) for n in feats.get("names", ())] or [
            f"f{i}" for i in range(len(self._fmean))]
        if not len(self._names) == len(self._fmean) == len(self._fstd):
            raise ValueError(f"DriftMonitor reference: {len(self._names)} feature names, "
                             f"{len(self._fmean)} means, {len(self._fstd)} stds")
        preds = ref.get("predictions") or {}
        self._pmean = np.array([preds.get(k, {}).get("mean", _NAN) for k in PREDICTIONS])
        self._pstd = np.array([preds.get(k, {}).get("std", _NAN) for k in PREDICTIONS])
        self._ic_ref = float(ref["ic"]) if ref.get("ic") is not None else _NAN
        size, bound = int(self.p.window), float(self.p.bound)
        self._fwin = None  # sized at the first feature vector
        self._pwin = RollingWindow(size, 2, self._pmean, self._pstd, bound)
        self._pok = np.isfinite(self._pmean) & np.isfinite(self._pstd) & (self._pstd > 0)
        # pred_return, pred_vol, realised return, hit, (r / pred_vol)², covered
        self._swin = RollingWindow(size, 6)
        self._bars, self._key, self._cur, self._prev = 0, None, None, None
        self._fstats = self._pstats = None
        self._skill = {"n": 0, "scored": 0, "ic": _NAN, "ic_reference": self._ic_ref,
                       "hit_rate": _NAN, "vol_ratio": _NAN, "coverage": _NAN}
        self._warnings, self._active, self._open = [], {}, {}
        self._evaluated = self._no_features_said = False
        self._num = self._stamp = _NAN
        # replaydata delivers a bar several times as it grows: judge it when the next begins
        self._replaying = bool(getattr(self._feed, "replaying", False))

    def _find_indicator(self):
        ind, strat = self.p.indicator, self.strategy
        if isinstance(ind, str):
            if not hasattr(strat, ind):
                raise ValueError(f"DriftMonitor: the strategy has no attribute {ind!r} "
                                 "(indicator=)")
            ind = getattr(strat, ind)
        elif ind is None:
            found = [i for i in strat.getindicators() if _lines(i)]
            if not found:
                raise ValueError("DriftMonitor: no indicator with lines pred_return and "
                                 "pred_vol on the strategy; pass indicator=")
            ind = found[0]
        if not _lines(ind):
            raise ValueError(f"DriftMonitor: {type(ind).__name__} has no lines pred_return "
                             "and pred_vol")
        return ind

    def _find_data(self):
        data = self.p.data
        if isinstance(data, str):
            return self.strategy.getdatabyname(data)
        if data is not None:
            return data
        own = getattr(self._ind, "data", None)
        return own if isinstance(own, bt.AbstractDataBase) else self.strategy.datas[0]

    # -- each bar ------------------------------------------------------------------------
    def next(self):
        key = len(self._feed)
        if not key:
            return
        if key != self._key:  # a new bar: the one before it is final
            if self._replaying and self._bars and self._bars % int(self.p.every) == 0:
                self._evaluate()  # a replayed bar is judged once, on its final values
            self._bars += 1
            self._prev, self._key = self._cur, key
            self._evaluated = False
        self._num = self._feed.datetime[0]
        pr, pv = float(self._ind.pred_return[0]), float(self._ind.pred_vol[0])
        close = float(self._feed.close[0])
        self._cur = (close, pr, pv)
        warm = math.isfinite(pr)
        prev = self._prev
        scored = (prev is not None and math.isfinite(prev[1]) and prev[0] > 0 and close > 0)
        if scored:
            real = math.log(close / prev[0])
            row = (prev[1], prev[2], real, *pair_scores(prev[1], prev[2], real,
                                                        self.p.coverage_z))
        self._swin.put(row if scored else None, key, scored)
        self._pwin.put((pr, pv), key, warm)
        self._put_features(key, warm)
        if not self._replaying and self._bars % int(self.p.every) == 0:
            self._evaluate()

    def _put_features(self, key, warm: bool) -> None:
        feats = getattr(self._ind, "features", None) if warm else None
        if feats is None:
            if self._fwin is not None:  # blanks this bar's row if an earlier update put one
                self._fwin.put(None, key, valid=False)
            if warm and len(self._fmean) and not self._no_features_said:
                self._no_features_said = True
                log.warning("DriftMonitor: the indicator gives no features (runonce mode?); "
                            "feature drift is not checked")
            return
        row = np.array(feats, dtype=np.float64).ravel()  # a copy: the buffer is reused
        if self._fwin is None:
            if len(self._fmean) and len(row) != len(self._fmean):
                raise ValueError(f"DriftMonitor: the indicator gives {len(row)} features, the "
                                 f"reference describes {len(self._fmean)} ({self._names})")
            has_ref = len(self._fmean) > 0
            if not has_ref:
                self._names = [f"f{i}" for i in range(len(row))]
            self._fwin = RollingWindow(int(self.p.window), len(row),
                                       self._fmean if has_ref else None,
                                       self._fstd if has_ref else None, float(self.p.bound))
            self._fok = (np.isfinite(self._fmean) & np.isfinite(self._fstd) & (self._fstd > 0)
                         if has_ref else np.zeros(len(row), dtype=bool))
        self._fwin.put(row, key)

    def stop(self):
        if self._bars and not self._evaluated:
            self._evaluate()

    # -- statistics and checks -----------------------------------------------------------
    def _evaluate(self) -> None:
        """Statistics of the windows as they stand, and every check's verdict; warnings are
        stamped with the time of the last bar in the windows."""
        self._evaluated = True
        self._stamp = self._num
        if self._fwin is not None:
            self._fstats = _compare(self._fwin.stats(), self._fok)
            self._check_distribution("feature", self._names, self._fstats)
        self._pstats = _compare(self._pwin.stats(), self._pok)
        self._check_distribution("prediction", PREDICTIONS, self._pstats)
        self._check_skill()

    def _check_distribution(self, kind: str, names, st: dict) -> None:
        p = self.p
        lim = p.std_ratio
        checks = []
        with np.errstate(invalid="ignore"):
            if p.shift_warn is not None:
                checks.append(("shift", st["shift"], np.abs(st["shift"]) > p.shift_warn,
                               p.shift_warn))
            if p.outside_warn is not None:
                checks.append(("outside", st["outside"], st["outside"] > p.outside_warn,
                               p.outside_warn))
            if lim is not None:
                ratio = st["std_ratio"]
                checks.append(("std_ratio", ratio, (ratio < 1 / lim) | (ratio > lim), lim))
        enough = st["n"] >= p.min_bars
        for check, values, bad, limit in checks:
            open_ = self._open.setdefault((kind, check), np.zeros(len(names), dtype=bool))
            # only the columns that fail now or have an episode open need a verdict
            for j in np.flatnonzero(enough & np.isfinite(values) & (bad | open_)):
                open_[j] = self._judge(kind, names[j], check, bool(bad[j]), values[j], limit,
                                       int(st["n"][j]))

    def _check_skill(self) -> None:
        p = self.p
        rows, st = self._swin.values(), self._swin.stats()
        n = int(st["n"][2])
        hits, z2, coverage = (float(v) for v in st["mean"][3:])
        ratio = math.sqrt(z2) if z2 >= 0 else _NAN
        ic = spearman_ic(rows[:, 0], rows[:, 2])
        self._skill.update(n=n, scored=self._swin.total, ic=ic, hit_rate=hits,
                           vol_ratio=ratio, coverage=coverage)
        if n < p.min_bars:
            return
        if p.min_ic is not None and math.isfinite(ic):
            self._judge("ic", "pred_return", "ic", ic < p.min_ic, ic, p.min_ic, n)
        lim = p.vol_ratio
        if lim is not None and math.isfinite(ratio):
            self._judge("calibration", "pred_vol", "vol_ratio", not 1 / lim <= ratio <= lim,
                        ratio, lim, n, coverage=coverage)

    def _now(self):
        return num_to_index(np.array([self._stamp]))[0]

    def _judge(self, kind, name, check, bad: bool, value, limit, n, **extra) -> bool:
        """One check's verdict this bar: start an episode, keep it, or end it; whether an
        episode is open after it."""
        key = (kind, name, check)
        ep = self._active.get(key)
        if bad:
            if ep is None:
                message = _MESSAGES[check].format(
                    label=f"{kind} {name!r}", value=value, limit=limit, n=n,
                    lo=1 / limit if limit else _NAN, bound=self.p.bound, z=self.p.coverage_z,
                    **extra)
                warning = {"time": self._now(), "kind": kind, "name": name, "check": check,
                           "value": float(value), "limit": float(limit), "message": message,
                           "recovered": None}
                self._warnings.append(warning)
                self._active[key] = {"warning": warning, "clear_from": None}
                log.warning("DriftMonitor %s: %s", warning["time"], message)
                if self.p.on_warning is not None:
                    self.p.on_warning(warning)
            else:
                ep["clear_from"] = None
            return True
        if ep is None:
            return False
        if ep["clear_from"] is None:
            ep["clear_from"] = self._bars
        if self._bars - ep["clear_from"] < self.p.recover_bars:
            return True
        del self._active[key]
        ep["warning"]["recovered"] = t = self._now()
        log.info("DriftMonitor %s: back in range (%s %r %s = %.4g) after: %s", t, kind, name,
                 check, value, ep["warning"]["message"])
        return False

    # -- results -------------------------------------------------------------------------
    @staticmethod
    def _table(names, st) -> dict:
        if st is None:
            return {}
        keys = ("mean", "std", "shift", "outside", "std_ratio")
        return {name: {"n": int(st["n"][j]), **{k: float(st[k][j]) for k in keys}}
                for j, name in enumerate(names)}

    def get_analysis(self) -> dict:
        return {
            "bars": self._bars,
            "warm_bars": self._pwin.total,
            "features": self._table(self._names, self._fstats),
            "predictions": self._table(PREDICTIONS, self._pstats),
            "skill": dict(self._skill),
            "warnings": [dict(w) for w in self._warnings],
            "active": len(self._active),
        }
