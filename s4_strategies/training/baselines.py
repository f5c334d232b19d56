"""Baseline forecasters: what a model must beat. Each is fitted on training rows only and
then applied to any rows; ``fit(...)`` returns the fitted object.

Classifiers (classes are the integers ``0..C-1``; ``C`` given or ``max(y) + 1``; class
arrays come back as float64 so that NaN can mark a row without a forecast;
``predict`` is ``predict_class``):

- ``MajorityClass``: always the most frequent training class (ties: the lowest), with
  one-hot probabilities.
- ``ClassPrior``: the training class frequencies ``pi_c = #{y = c} / n`` as the
  probabilities of every row; its class is the majority class.
- ``MultinomialLogistic``: ``P(y = c | x) = softmax(z W + b)_c`` with ``z = (x - mu) / sd``
  standardised by training statistics, fitted by L-BFGS on::

      J(W, b) = mean_i [logsumexp_c(z_i W + b) - (z_i W + b)_{y_i}] + l2 / 2 ||W||^2
      dJ/dW   = Z^T (P - Y) / n + l2 W,   dJ/db = mean_i (P - Y)_i       (Y one-hot)

  and reported in raw units: ``coef_ = W / sd``, ``intercept_ = b - (mu / sd) W``.

Regressors:

- ``OLS``: ``y ~ a + X w`` minimising ``mean((y - a - X w)^2) + ridge ||w||^2`` (the
  intercept is not penalised); ``y`` may be (n,) or (n, k).
- ``TrailingVol(window)``: next period's log realised volatility forecast by the trailing
  one, ``realised_log_vol(r, window)``.
- HAR and EWMA volatility: ``vol_baselines``.

``r_t = log(c_t / c_{t-1})`` is the one-bar log return ending at bar ``t``; the volatility
definition is the ``rv_w`` feature's and the ``log_vol`` label's (``s4_strategies.features``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

from ..features.spec import EPS


def _vector(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    return a


def _matrix(X) -> np.ndarray:
    a = np.asarray(X, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"X must be (n, d), got shape {a.shape}")
    return a


def _n_rows(rows) -> int:
    return int(rows) if np.ndim(rows) == 0 else len(rows)


def _class_labels(y: np.ndarray, n_classes: int | None) -> tuple[np.ndarray, int]:
    """Finite labels as int64 and the number of classes; ValueError for anything else."""
    if len(y) == 0:
        raise ValueError("no finite labels to fit on")
    if np.any(y != np.round(y)) or y.min() < 0:
        raise ValueError("class labels must be non-negative integers")
    c = int(y.max()) + 1 if n_classes is None else int(n_classes)
    if y.max() >= c:
        raise ValueError(f"label {int(y.max())} is out of range for {c} classes")
    return y.astype(np.int64), c


def _row_mask(rows, n: int) -> np.ndarray:
    """None (all), a slice, a (start, stop) pair like ``Split.train``, a boolean mask or
    integer positions, as a boolean mask of length n."""
    mask = np.zeros(n, dtype=bool)
    if rows is None:
        mask[:] = True
    elif isinstance(rows, slice):
        mask[rows] = True
    elif isinstance(rows, tuple) and len(rows) == 2:
        mask[slice(*rows)] = True
    else:
        a = np.asarray(rows)
        if a.dtype == bool:
            if a.shape != (n,):
                raise ValueError(f"a boolean row mask must have length {n}, got {a.shape}")
            mask = a.copy()
        else:
            if a.size and (a.min() < -n or a.max() >= n):
                raise ValueError(f"row positions must lie in 0..{n - 1}")
            mask[a.astype(np.int64)] = True
    return mask


class _ConstantClassifier:
    """The same class probabilities ``probs_`` (C,) for every row."""

    probs_: np.ndarray

    def _freq(self, y, n_classes) -> np.ndarray:
        y = _vector(y, "y")
        yi, c = _class_labels(y[np.isfinite(y)], n_classes)
        counts = np.bincount(yi, minlength=c).astype(np.float64)  # (C,)
        return counts / counts.sum()

    def predict_proba(self, rows) -> np.ndarray:
        """(n, C) probabilities; ``rows`` is a row count or anything with a length."""
        return np.tile(self.probs_, (_n_rows(rows), 1))  # (n, C)

    def predict_class(self, rows) -> np.ndarray:
        return np.full(_n_rows(rows), float(np.argmax(self.probs_)))  # (n,)

    predict = predict_class


class MajorityClass(_ConstantClassifier):
    """The most frequent training class for every row (NaN labels ignored)."""

    def fit(self, y, n_classes: int | None = None) -> MajorityClass:
        freq = self._freq(y, n_classes)  # (C,)
        self.probs_ = np.eye(len(freq))[np.argmax(freq)]  # (C,)
        return self


class ClassPrior(_ConstantClassifier):
    """The training class frequencies as the probabilities of every row."""

    def fit(self, y, n_classes: int | None = None) -> ClassPrior:
        self.probs_ = self._freq(y, n_classes)  # (C,)
        return self


class MultinomialLogistic:
    """Softmax regression with intercept and an L2 penalty on standardised features."""

    def __init__(self, l2: float = 1e-3, max_iter: int = 200):
        if l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {l2}")
        self.l2, self.max_iter = float(l2), int(max_iter)

    def fit(self, X, y, n_classes: int | None = None) -> MultinomialLogistic:
        """Fit on the rows where X and y are finite."""
        X, y = _matrix(X), _vector(y, "y")  # (n, d), (n,)
        if len(X) != len(y):
            raise ValueError(f"X and y differ in length: {len(X)} vs {len(y)}")
        keep = np.isfinite(X).all(axis=1) & np.isfinite(y)  # (n,)
        X, (yi, c) = X[keep], _class_labels(y[keep], n_classes)
        n, d = X.shape
        if n < 2:
            raise ValueError(f"MultinomialLogistic needs at least 2 finite rows, got {n}")
        mu, sd = X.mean(axis=0), X.std(axis=0)  # (d,), (d,)
        sd = np.where(sd > 0, sd, 1.0)
        Z = (X - mu) / sd  # (n, d)
        Y = np.eye(c)[yi]  # (n, C)
        l2 = self.l2

        def objective(theta):
            W, b = theta[: d * c].reshape(d, c), theta[d * c:]  # (d, C), (C,)
            logits = Z @ W + b  # (n, C)
            lse = logsumexp(logits, axis=1)  # (n,)
            loss = np.mean(lse - np.sum(logits * Y, axis=1)) + 0.5 * l2 * np.sum(W * W)
            G = (np.exp(logits - lse[:, None]) - Y) / n  # (n, C)
            grad = np.concatenate([(Z.T @ G + l2 * W).ravel(), G.sum(axis=0)])
            return loss, grad

        res = minimize(objective, np.zeros((d + 1) * c), jac=True, method="L-BFGS-B",
                       options={"maxiter": self.max_iter})
        W, b = res.x[: d * c].reshape(d, c), res.x[d * c:]  # (d, C), (C,)
        self.coef_ = W / sd[:, None]  # (d, C)
        self.intercept_ = b - (mu / sd) @ W  # (C,)
        self.n_classes_, self.converged_, self.n_iter_ = c, bool(res.success), int(res.nit)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """(n, C) probabilities; NaN rows where X has a NaN."""
        X = _matrix(X)  # (n, d)
        if X.shape[1] != self.coef_.shape[0]:
            raise ValueError(f"X has {X.shape[1]} features, the fit had {self.coef_.shape[0]}")
        ok = np.isfinite(X).all(axis=1)  # (n,)
        out = np.full((len(X), self.n_classes_), np.nan)  # (n, C)
        logits = X[ok] @ self.coef_ + self.intercept_  # (m, C)
        out[ok] = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
        return out

    def predict_class(self, X) -> np.ndarray:
        p = self.predict_proba(X)  # (n, C)
        ok = np.isfinite(p).all(axis=1)
        return np.where(ok, np.argmax(np.nan_to_num(p, nan=-1.0), axis=1), np.nan)  # (n,)

    predict = predict_class


class OLS:
    """Least squares with intercept and a small ridge on the slopes; y (n,) or (n, k)."""

    def __init__(self, ridge: float = 1e-6):
        if ridge < 0:
            raise ValueError(f"ridge must be >= 0, got {ridge}")
        self.ridge = float(ridge)

    def fit(self, X, y) -> OLS:
        """Fit on the rows where X and y are finite."""
        X, y = _matrix(X), np.asarray(y, dtype=np.float64)  # (n, d), (n,) | (n, k)
        if y.ndim not in (1, 2) or len(y) != len(X):
            raise ValueError(f"y must be (n,) or (n, k) with n = {len(X)}, got {y.shape}")
        Y = y.reshape(len(y), -1)  # (n, k)
        keep = np.isfinite(X).all(axis=1) & np.isfinite(Y).all(axis=1)  # (n,)
        X, Y = X[keep], Y[keep]
        n, d = X.shape
        if n < 2:
            raise ValueError(f"OLS needs at least 2 finite rows, got {n}")
        xm, ym = X.mean(axis=0), Y.mean(axis=0)  # (d,), (k,)
        # min ||Yc - Xc w||^2 + n ridge ||w||^2 as one stacked least-squares problem
        A = np.vstack([X - xm, math.sqrt(n * self.ridge) * np.eye(d)])  # (n + d, d)
        B = np.vstack([Y - ym, np.zeros((d, Y.shape[1]))])  # (n + d, k)
        w = np.linalg.lstsq(A, B, rcond=None)[0]  # (d, k)
        b = ym - xm @ w  # (k,)
        self.coef_, self.intercept_ = (w[:, 0], float(b[0])) if y.ndim == 1 else (w, b)
        return self

    def predict(self, X) -> np.ndarray:
        X = _matrix(X)  # (n, d)
        if X.shape[1] != len(self.coef_):
            raise ValueError(f"X has {X.shape[1]} features, the fit had {len(self.coef_)}")
        return X @ self.coef_ + self.intercept_  # (n,) | (n, k)


def realised_log_vol(r, window: int) -> np.ndarray:
    """``log(sqrt(mean(r_{t-w+1..t}^2)) + 1e-8)`` at every t; NaN until ``window`` returns
    are in, and wherever the window holds a NaN."""
    r = _vector(r, "r")  # (n,)
    w = int(window)
    if w < 1 or w != window:
        raise ValueError(f"window must be a positive integer, got {window}")
    out = np.full(len(r), np.nan)  # (n,)
    if len(r) >= w:
        ms = np.lib.stride_tricks.sliding_window_view(r * r, w).mean(axis=1)  # (n - w + 1,)
        out[w - 1:] = np.log(np.sqrt(ms) + EPS)
    return out


class TrailingVol:
    """Next period's log realised volatility = the trailing one over ``window`` bars."""

    def __init__(self, window: int = 24):
        self.window = int(window)

    def fit(self, r=None, target=None, rows=None) -> TrailingVol:
        """Nothing to learn; the signature matches ``HAR.fit``."""
        return self

    def predict(self, r) -> np.ndarray:
        return realised_log_vol(r, self.window)  # (n,)
