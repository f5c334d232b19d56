"""The multi-asset model's cost-aware decision: how often to rebalance to its portfolio
head's weights, and how small a change is not worth its fee, chosen on validation.

``S4MultiAssetStrategy`` rebalances every ``rebalance`` bars to the weights head (long-only,
each capped at ``max_weight``), skipping an asset whose weight would change by less than
``min_trade`` (an exit is always taken). Every trade pays the taker fee on the value traded,
every position the funding of a long; between rebalances the weights drift with the prices.
:func:`rebalance_path` is that rule on arrays (the strategy's bookkeeping at the close of
each bar, as :func:`~s4_strategies.training.evaluation.backtest_positions` is the
directional one's), :func:`select_allocation` picks (``rebalance``, ``min_trade``) on the
VALIDATION bars by net Sharpe, and :func:`allocation_on_validation` does it for a trained
model: the checkpoint stores the choice (``meta["decision"]``) and the strategy trades it by
default.

Returns, bar t+1 (weights ``h`` held after the close of bar t, ``r`` simple returns)::

    R[t+1] = Σ_a h[t,a]·r[t+1,a] − fee·Σ_a |h[t,a] − h⁻[t,a]| − Σ_a h[t,a]·funding[t]
    h⁻[t+1,a] = h[t,a]·(1 + r[t+1,a]) / (1 + R[t+1])          (drift to the next close)

with ``h⁻`` the weights before the decision at a close; the last bar also pays the fee of
closing what is held (as ``backtest_positions`` does).
"""

from __future__ import annotations

import math

import numpy as np

from ..fees import BYBIT_TAKER
from ..rules import REBALANCE_FALLBACK as FALLBACK
from .decision import HOURS_PER_YEAR, _sharpe

DEFAULT_REBALANCE = (1, 4, 12, 24, 48)
DEFAULT_MIN_TRADE = (0.0, 0.02, 0.05, 0.1)
#: (rebalance, min_trade) pairs tried by :func:`select_allocation`
DEFAULT_GRID = tuple((r, m) for r in DEFAULT_REBALANCE for m in DEFAULT_MIN_TRADE)


def rebalance_path(weights, close, rebalance: int, min_trade: float, max_weight: float = 1.0,
                   fee: float = BYBIT_TAKER, funding=None) -> dict:
    """The strategy's rule on arrays (module doc). ``weights`` (T, A): the weights head, NaN
    where an asset is not warm or has no bar; ``close`` (T, A): closes, NaN where an asset
    has no bar (before it lists: it is not held then); ``funding`` (T,): the rate a long pays
    over bar t (``funding.funding_per_bar``) or None. Rebalances at bars 0, ``rebalance``,
    2·``rebalance``, … where some asset has a weight.

    Returns ``{"returns" (T,), "held" (T, A) weights after each close's decision,
    "turnover" (T,) Σ|change| at each close, "trades": asset orders, "rebalances"}``."""
    w = np.asarray(weights, dtype=np.float64)
    c = np.asarray(close, dtype=np.float64)
    if w.ndim != 2 or c.shape != w.shape:
        raise ValueError(f"weights {w.shape} and close {c.shape} must be (bars, assets), "
                         "the same shape")
    if int(rebalance) < 1 or not min_trade >= 0:
        raise ValueError(f"rebalance must be >= 1 and min_trade >= 0, got {rebalance}, "
                         f"{min_trade}")
    T, A = w.shape
    f = np.zeros(T) if funding is None else np.asarray(funding, dtype=np.float64)
    if f.shape != (T,):
        raise ValueError(f"funding {f.shape} must be ({T},), one rate per bar")
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.zeros((T, A))
        r[1:] = c[1:] / c[:-1] - 1.0
    r = np.nan_to_num(r, nan=0.0, posinf=0.0, neginf=0.0)  # (T, A) no bar: no move
    held, turnover, ret = np.zeros((T, A)), np.zeros(T), np.zeros(T)
    h = np.zeros(A)  # (A,) weights before this close's decision
    trades = rebalances = 0
    for t in range(T):
        if t % int(rebalance) == 0 and np.isfinite(w[t]).any():
            rebalances += 1
            for a in np.flatnonzero(np.isfinite(w[t])):
                target = min(max_weight, max(0.0, w[t, a]))
                if abs(target - h[a]) >= min_trade or (target == 0.0 and h[a] != 0.0):
                    if target != h[a]:
                        turnover[t] += abs(target - h[a])
                        trades += 1
                    h[a] = target
        held[t] = h
        if t + 1 < T:
            gross = float(h @ r[t + 1])
            ret[t + 1] = gross - fee * turnover[t] - float(h.sum()) * f[t]
            h = h * (1.0 + r[t + 1]) / (1.0 + ret[t + 1])
    if T:
        ret[-1] -= fee * float(np.abs(held[-1]).sum())
    return {"returns": ret, "held": held, "turnover": turnover, "trades": trades,
            "rebalances": rebalances}


def select_allocation(weights_val, close_val, fee: float = BYBIT_TAKER, grid=DEFAULT_GRID,
                      funding=None, periods_per_year: float = HOURS_PER_YEAR,
                      max_weight: float = 1.0) -> tuple[dict | None, dict]:
    """The (``rebalance``, ``min_trade``) of ``grid`` with the best net Sharpe on VALIDATION
    bars (fees and funding); ties go to the larger ``rebalance``, then the larger
    ``min_trade`` (fewer trades). A cell needs a finite Sharpe (a model that never holds
    anything has none): with none, the choice is None and the ``note`` says so. Returns the
    chosen cell and ``{"chosen", "cells": [{rebalance, min_trade, sharpe, trades,
    turnover_per_year, eligible}], "eligible", "fee", "funding": bool, "note"}``."""
    cells = []
    n = len(np.asarray(close_val))
    for rebalance, min_trade in grid:
        path = rebalance_path(weights_val, close_val, int(rebalance), float(min_trade),
                              max_weight, fee, funding)
        sharpe = _sharpe(path["returns"][1:], periods_per_year)
        cells.append({"rebalance": int(rebalance), "min_trade": float(min_trade),
                      "sharpe": sharpe, "trades": path["trades"],
                      "turnover_per_year": float(path["turnover"].sum()) / max(n, 1)
                      * periods_per_year, "eligible": bool(math.isfinite(sharpe))})
    eligible = [c for c in cells if c["eligible"]]
    table = {"chosen": None, "cells": cells, "eligible": len(eligible), "fee": float(fee),
             "funding": funding is not None}
    if not eligible:
        table["note"] = ("no cell has a finite net Sharpe on the validation bars (the "
                         f"weights hold nothing): the strategy's fallback {FALLBACK} applies")
        return None, table
    best = max(eligible, key=lambda c: (c["sharpe"], c["rebalance"], c["min_trade"]))
    table["chosen"] = best
    table["note"] = (f"rebalance={best['rebalance']}, min_trade={best['min_trade']}: best net "
                     f"Sharpe {best['sharpe']:.3f} of {len(eligible)} cells")
    return best, table


def allocation_on_validation(predictor, frames: dict, split, fee: float = BYBIT_TAKER,
                             funding_rate: float | None = None) -> dict:
    """The decision for a trained ``MultiPredictor``, chosen on the validation bars of
    ``split`` (on the union index of ``frames``; the model run from the first bar up to the
    end of validation, nothing later). ``funding_rate``: per 8 h (default: the documented
    constant of :mod:`.funding`). What ``meta["decision"]`` holds."""
    from analyzers.metrics import infer_periods_per_year

    from ..model.multi import panel
    from .funding import DEFAULT_FUNDING_RATE, funding_per_bar

    rate = DEFAULT_FUNDING_RATE if funding_rate is None else funding_rate
    index, _ = panel(frames)
    end = split.val[1]
    cut = {a: df[df.index <= index[end - 1]] for a, df in frames.items()}
    pred = predictor.predict(cut)  # {asset: frame on index[:end]}
    val = slice(*split.val)
    names = predictor.assets
    weights = np.stack([pred[a]["weight"].to_numpy() for a in names], axis=1)[val]  # (V, A)
    close = np.stack([frames[a]["close"].reindex(index[:end]).to_numpy() for a in names],
                     axis=1)[val]  # (V, A)
    funding = funding_per_bar(index[:end], rate)[val]
    ppy = infer_periods_per_year(index)
    best, table = select_allocation(weights, close, fee, funding=funding, periods_per_year=ppy)
    chosen = best or FALLBACK
    return {"score": "weights", "rebalance": int(chosen["rebalance"]),
            "min_trade": float(chosen["min_trade"]), "fee": fee, "funding_rate_per_8h": rate,
            "chosen": best, "cells": table["cells"], "note": table["note"]}
