"""Honest evaluation: one position rule, one fee model, one set of metrics for every model.

The rule: after the close of bar t the model's most likely class becomes the position held
over bar t+1 (-1 short, 0 flat, +1 long; five classes give -1, -0.5, 0, 0.5, 1). Every change
of position pays the taker fee on the notional traded (Bybit: 0.055 % per side). Metrics
come from ``analyzers.metrics.compute_metrics`` (quantstats' definitions), trades are
runs of constant non-zero position.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from analyzers.metrics import bootstrap_sharpe_ci, compute_metrics

from ..fees import BYBIT_TAKER

TAKER_FEE = BYBIT_TAKER


def positions_from_signal(signal: np.ndarray, n_classes: int = 3, long_only: bool = False):
    """Class values (-1..1 or -2..2) to positions in [-1, 1]; NaN (warm-up) means flat."""
    half = n_classes // 2
    pos = np.nan_to_num(np.asarray(signal, dtype=np.float64), nan=0.0) / half
    return np.clip(pos, 0.0 if long_only else -1.0, 1.0)


def backtest_positions(close: np.ndarray, pos: np.ndarray, fee: float = TAKER_FEE) -> dict:
    """Per-bar strategy returns of holding ``pos[t]`` over (t, t+1], fees at each change.

    ``returns[t+1] = pos[t] * (c[t+1] / c[t] - 1) - fee * |pos[t] - pos[t-1]|``; the first
    bar has no return. The last entry of ``pos`` (decided at the last close) is never
    held, so it trades nothing; what is held over the last bar, ``pos[-2]``, is closed at
    the last close and pays ``fee * |pos[-2]|`` in the last bar's return. ``turnover`` is
    the notional that pays the fee (that close included), ``fees`` = ``fee * turnover``.
    """
    close = np.asarray(close, dtype=np.float64)
    pos = np.asarray(pos, dtype=np.float64)
    n = len(close)
    simple = np.zeros(n)
    simple[1:] = close[1:] / close[:-1] - 1.0
    prev = np.concatenate([[0.0], pos[:-1]])
    traded = np.abs(pos - prev)[:-1]  # (n - 1,) the changes that are executed
    closing = abs(pos[-2]) if n >= 2 else 0.0  # what is held at the end, closed there
    ret = np.zeros(n)
    ret[1:] = pos[:-1] * simple[1:] - fee * traded
    if n >= 2:
        ret[-1] -= fee * closing
    turnover = float(traded.sum() + closing)
    return {"returns": ret, "turnover": turnover, "fees": float(fee * turnover)}


def trade_returns(pos: np.ndarray, returns: np.ndarray) -> np.ndarray:
    """Compounded return of each trade (a run of constant non-zero position)."""
    out = []
    cur, acc = 0.0, 1.0
    for p, r in zip(pos[:-1], returns[1:]):
        if p != cur:
            if cur != 0.0:
                out.append(acc - 1.0)
            cur, acc = p, 1.0
        if p != 0.0:
            acc *= 1.0 + r
    if cur != 0.0:
        out.append(acc - 1.0)
    return np.asarray(out)


def evaluate_positions(index: pd.DatetimeIndex, close, pos, periods_per_year: int,
                       fee: float = TAKER_FEE, seed: int = 0, n_boot: int = 1000,
                       funding=None) -> dict:
    """The comparison table's columns for one position series. ``funding``: per-bar funding
    rates (``funding.funding_per_bar``), charged on the position held, or None."""
    bt = backtest_positions(close, pos, fee)
    if funding is not None:
        from .funding import charge

        bt["returns"] = bt["returns"] - charge(pos, funding)
    rets = pd.Series(bt["returns"], index=index.tz_convert(None) if index.tz else index)
    m = compute_metrics(rets, periods_per_year)
    trades = trade_returns(np.asarray(pos, dtype=np.float64), bt["returns"])
    wins, losses = trades[trades > 0], trades[trades < 0]
    lo, hi = bootstrap_sharpe_ci(rets, periods_per_year, n=n_boot, seed=seed)
    return {
        "sharpe": m["sharpe"],
        "sharpe_ci": [lo, hi],
        "sortino": m["sortino"],
        "max_drawdown": m["max_drawdown"],
        "calmar": m["calmar"],
        "annual_return": m["cagr"],
        "win_rate": float(len(wins) / len(trades)) if len(trades) else None,
        "profit_factor": float(wins.sum() / -losses.sum()) if len(losses) else None,
        "trades": int(len(trades)),
        "turnover": bt["turnover"],
        "fees": bt["fees"],
        "exposure": float(np.mean(np.asarray(pos) != 0)),
    }


def time_per_bar(predictor, df: pd.DataFrame, bars: int = 2000) -> float:
    """Microseconds per bar of the per-bar path (features + model stepper + decoding)."""
    stream = predictor.stream()
    rows = df[["open", "high", "low", "close", "volume"]].iloc[:bars].to_numpy().tolist()
    for row in rows[:50]:
        stream.step(*row)
    t0 = time.perf_counter()
    for row in rows:
        stream.step(*row)
    return (time.perf_counter() - t0) / len(rows) * 1e6
