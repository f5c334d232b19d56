"""Fit market regimes on the training period: a Gaussian HMM (hmmlearn) or mixture
(scikit-learn) on a model's hidden state, or on its input features for comparison.

    regimes = fit_regimes(predictor, df)                 # the predictor's own training period
    probs = regimes.filter(predictor.states(df))         # (L, K), bar t from bars <= t
    RegimeIndicator(data, model=predictor, regimes=regimes)   # the same, bar by bar

What is fitted (all on the training rows only): standardisation and principal axes
(``n_components``) of the vectors, then K Gaussians: an HMM by EM (started from a mixture
fit, sticky transitions) or the mixture itself. Labels come from
:class:`~s4_strategies.model.regimes.RegimeModel`'s causal filter, never from the HMM's
smoothed posteriors. Regimes are renumbered by the realised volatility of the training bars
they hold (regime 0: calmest), so labels mean the same across seeds and refits.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd

from ..model.regimes import REGIME_KINDS, REGIME_SOURCES, RegimeModel


def regime_inputs(predictor, df: pd.DataFrame, source: str = "state",
                  strict: bool = True) -> np.ndarray:
    """The vector of every bar: the hidden state (``Predictor.states``) or the normalised
    input features (``Predictor.features``), (L, D). Both causal."""
    if source == "state":
        return predictor.states(df, strict=strict).to_numpy()
    if source == "features":
        return predictor.features(df, strict=strict)
    raise ValueError(f"source must be one of {REGIME_SOURCES}, got {source!r}")


def fit_regime_model(V: np.ndarray, vol: np.ndarray, n_regimes: int = 3, kind: str = "hmm",
                     source: str = "state", n_components: int = 4, seed: int = 0,
                     info: dict | None = None) -> RegimeModel:
    """Fit on the training rows ``V`` (N, D) of consecutive bars; ``vol`` (N,): each bar's
    realised volatility (e.g. |1-bar log return|), which only orders the regimes."""
    from threadpoolctl import threadpool_limits

    if kind not in REGIME_KINDS:
        raise ValueError(f"kind must be one of {REGIME_KINDS}, got {kind!r}")
    V = np.asarray(V, dtype=np.float64)
    if V.ndim != 2 or len(V) < 10 * n_regimes or not np.isfinite(V).all():
        raise ValueError(f"need a finite (N, D) array with N >= {10 * n_regimes} training rows, "
                         f"got shape {V.shape}")
    if not 1 <= n_components <= V.shape[1]:
        raise ValueError(f"n_components must be in [1, {V.shape[1]}], got {n_components}")
    # one BLAS thread: these fits are small, and threads on shared cores cost 10x
    with threadpool_limits(1):
        params = _fit(V, n_regimes, kind, n_components, seed)
    model = RegimeModel(kind, source, **params)
    order = _order_by_volatility(model.labels(V), np.asarray(vol, dtype=np.float64), n_regimes)
    return _permuted(model, order, info or {}, model.labels(V), vol)


def _fit(V, n_regimes, kind, n_components, seed) -> dict:
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    mean, scale = V.mean(0), V.std(0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    S = (V - mean) / scale  # (N, D)
    components = PCA(n_components, random_state=seed).fit(S).components_  # (d, D)
    Z = S @ components.T  # (N, d)
    gmm = GaussianMixture(n_regimes, covariance_type="full", n_init=3, reg_covar=1e-4,
                          random_state=seed).fit(Z)
    params = dict(weights=gmm.weights_, means=gmm.means_, covars=gmm.covariances_,
                  transmat=None)
    if kind == "hmm":
        params = _fit_hmm(Z, gmm, seed)
    return dict(mean=mean, scale=scale, components=components, **params)


def _fit_hmm(Z: np.ndarray, gmm, seed: int, n_init: int = 4) -> dict:
    """EM from the mixture's Gaussians and from ``n_init - 1`` k-means starts, all with
    sticky transitions; the fit with the highest training likelihood is kept (EM on an HMM
    has local optima: one start can merge two regimes)."""
    from hmmlearn.hmm import GaussianHMM

    K = len(gmm.weights_)
    T = np.full((K, K), 0.02 / max(K - 1, 1))  # sticky start: regimes last ~50 bars
    np.fill_diagonal(T, 0.98 if K > 1 else 1.0)
    best, best_score = None, -np.inf
    log = logging.getLogger("hmmlearn.base")
    level = log.level
    log.setLevel(logging.ERROR)  # "not converging" when EM's gain is below rounding
    try:
        for i in range(n_init):
            hmm = GaussianHMM(K, covariance_type="full", n_iter=100, tol=1e-4, min_covar=1e-4,
                              random_state=seed + i, init_params="" if i == 0 else "mc",
                              params="stmc")
            hmm.startprob_, hmm.transmat_ = np.full(K, 1.0 / K), T.copy()
            if i == 0:
                hmm.means_, hmm.covars_ = gmm.means_, gmm.covariances_
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                hmm.fit(Z)
                score = hmm.score(Z)
            if np.isfinite(score) and score > best_score:
                best, best_score = hmm, score
    finally:
        log.setLevel(level)
    return dict(weights=best.startprob_, means=best.means_, covars=best.covars_,
                transmat=best.transmat_)


def _order_by_volatility(labels, vol, K) -> np.ndarray:
    """Old regime numbers sorted by the mean ``vol`` of their bars (empty ones last)."""
    level = [np.nanmean(vol[labels == k]) if (labels == k).any() else np.inf for k in range(K)]
    return np.argsort(level, kind="stable")


def _permuted(m: RegimeModel, order, info, labels, vol) -> RegimeModel:
    T = None if m.transmat is None else m.transmat[np.ix_(order, order)]
    new = RegimeModel(m.kind, m.source, m.mean, m.scale, m.components, m.weights[order],
                      m.means[order], m.covars[order], T)
    relabel = np.argsort(order)[labels]
    vol = np.asarray(vol, dtype=np.float64)
    new.info = {**info, "train_bars": int(len(labels)),
                "share": [float((relabel == k).mean()) for k in range(len(order))],
                "mean_abs_return": [float(np.nanmean(vol[relabel == k]))
                                    if (relabel == k).any() else None for k in range(len(order))]}
    return new


def train_rows(predictor, index: pd.DatetimeIndex, period=None) -> np.ndarray:
    """Positions of the bars of ``period`` = (first, last) (default: the predictor's own
    training period, ``meta["periods"]["train"]``) past the feature warm-up."""
    if period is None:
        period = (predictor.meta.get("periods") or {}).get("train")
        if not period:
            raise ValueError("the predictor records no training period: pass period=(first, "
                             "last)")
    lo, hi = (pd.Timestamp(p) for p in period)
    if lo.tzinfo is None and index.tz is not None:
        lo, hi = lo.tz_localize(index.tz), hi.tz_localize(index.tz)
    pos = np.flatnonzero((index >= lo) & (index <= hi))
    return pos[pos >= predictor.feature_spec.warmup]


def fit_regimes(predictor, df: pd.DataFrame, n_regimes: int = 3, kind: str = "hmm",
                source: str = "state", period=None, n_components: int = 4,
                seed: int = 0) -> RegimeModel:
    """A :class:`RegimeModel` of ``predictor``'s hidden state (``source="state"``) or input
    features (``"features"``), fitted on ``period`` (default: the predictor's training
    period) of ``df``. The vectors come from running over ``df`` from its first bar (each
    bar's from bars <= it); regimes are ordered by the training bars' mean |log return|."""
    V = regime_inputs(predictor, df, source)
    rows = train_rows(predictor, df.index, period)
    r = np.abs(np.diff(np.log(df["close"].to_numpy()), prepend=np.nan))
    info = {"period": [str(df.index[rows[0]]), str(df.index[rows[-1]])] if len(rows) else None,
            "model": predictor.name}
    return fit_regime_model(V[rows], r[rows], n_regimes, kind, source, n_components, seed,
                            info)


def adjusted_rand(truth, labels) -> float:
    """Adjusted Rand index of two labellings (1: the same partition, ~0: chance)."""
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(np.asarray(truth), np.asarray(labels)))
