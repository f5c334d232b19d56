"""A cost-aware decision rule: trade only when the model expects more than the trading costs.

The rule itself, :class:`~s4_strategies.rules.BandRule` (re-exported here), is a no-trade
band with hysteresis on the model's expected log return; its table of transitions is in
:mod:`s4_strategies.rules`, the one place the strategies and this evaluation share.

:func:`band_from_cost` scales the band by the round-trip cost (``2 * fee``),
:func:`select_rule` picks the scaling on validation data by net Sharpe, and
:func:`cost_report` says what the costs did to a position series.

Returns follow :func:`~s4_strategies.training.evaluation.backtest_positions`; ``funding``,
where given, is the per-bar array of :func:`~s4_strategies.training.funding.funding_per_bar`
(the rate a unit long pays over bar ``t``), charged as ``pos[t] * funding[t]`` in
``returns[t+1]``. Sharpe here is ``mean / std(ddof=1) * sqrt(periods_per_year)`` of the
per-bar returns, ``analyzers.metrics``' definition.
"""

from __future__ import annotations

import math

import numpy as np

from ..fees import BYBIT_TAKER
from ..rules import BandRule, band_from_cost
from .evaluation import backtest_positions
from .funding import charge

DEFAULT_K_ENTER = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
DEFAULT_K_EXIT = (-0.5, 0.0, 0.5)
#: (k_enter, k_exit) pairs tried by :func:`select_rule`, in units of the round-trip cost.
DEFAULT_GRID = tuple((e, x) for e in DEFAULT_K_ENTER for x in DEFAULT_K_EXIT if x <= e)
HOURS_PER_YEAR = 24 * 365


def count_trades(pos) -> int:
    """Runs of constant non-zero position among the positions held over a bar (``pos[:-1]``),
    as :func:`~s4_strategies.training.evaluation.trade_returns` counts them."""
    p = np.asarray(pos, dtype=np.float64)[:-1]
    prev = np.concatenate([[0.0], p[:-1]])
    return int(np.count_nonzero((p != 0) & (p != prev)))


def _sharpe(r: np.ndarray, periods_per_year: float) -> float:
    if len(r) < 2:
        return float("nan")
    sd = r.std(ddof=1)
    if not sd > 0:
        return float("nan")
    return float(r.mean() / sd * math.sqrt(periods_per_year))


def _inputs(close, pos_or_scores, funding, what: str):
    close = np.asarray(close, dtype=np.float64)
    other = np.asarray(pos_or_scores, dtype=np.float64)
    if close.ndim != 1 or other.shape != close.shape:
        raise ValueError(f"close {close.shape} and {what} {other.shape} must be 1-D, same length")
    if funding is not None:
        funding = np.asarray(funding, dtype=np.float64)
        if funding.shape != close.shape:
            raise ValueError(f"funding {funding.shape} must match close {close.shape} "
                             "(use funding.funding_per_bar(index, rates))")
    return close, other, funding


def carry_positions(rule: BandRule, scores, start: float = 0.0) -> np.ndarray:
    """``rule.positions(scores)`` from the position ``start`` instead of flat: the state a
    band inherits when it takes over from another (the next walk-forward fold's rule, from
    the position the last fold's rule held at its last bar). Equals iterating
    ``rule.step`` from ``start``; the paths meet at the first bar where both positions
    agree and stay together after it (the step depends on the score and the position
    only), so only that prefix is stepped."""
    flat = rule.positions(scores)  # (n,)
    if start == 0.0:
        return flat
    out, pos = flat.copy(), float(start)
    for t, score in enumerate(np.asarray(scores, dtype=np.float64)):
        pos = float(rule.step(score, pos))
        if pos == flat[t]:
            break
        out[t] = pos
    return out


def net_returns(close, pos, fee, funding=None) -> tuple[np.ndarray, np.ndarray]:
    """(net returns, funding costs) of holding ``pos``: the taker ``fee`` at each change and
    ``funding`` (per-bar rates, or None) on the position held."""
    ret = backtest_positions(close, pos, fee)["returns"]
    cost = charge(pos, funding) if funding is not None else np.zeros(len(pos))
    return ret - cost, cost


def select_rule(scores_val, close_val, fee: float = BYBIT_TAKER, grid=DEFAULT_GRID,
                min_trades: int = 20, funding=None, periods_per_year: float = HOURS_PER_YEAR,
                long_only: bool = False) -> tuple[BandRule, dict]:
    """The (k_enter, k_exit) of ``grid`` with the best net Sharpe on VALIDATION data.

    Only cells with at least ``min_trades`` trades (and a finite Sharpe) are eligible; ties
    go to the larger ``k_enter``, then the larger ``k_exit``. When nothing is eligible the
    rule never trades (``enter = inf``) and the table's ``note`` says so. Returns the rule
    and a JSON-able table: ``{"chosen": cell or None, "cells": [...], "eligible": n,
    "min_trades", "fee", "funding": bool, "note"}``, a cell being ``{k_enter, k_exit,
    enter, exit, sharpe, trades, eligible}``. Judge the chosen rule on test data, not here.
    """
    close, scores, funding = _inputs(close_val, scores_val, funding, "scores")
    cells = []
    for k_enter, k_exit in grid:
        if k_exit > k_enter:
            raise ValueError(f"grid cell ({k_enter}, {k_exit}): k_exit must be <= k_enter")
        rule = band_from_cost(fee, k_enter, k_exit, long_only)
        pos = rule.positions(scores)
        sharpe = _sharpe(net_returns(close, pos, fee, funding)[0], periods_per_year)
        trades = count_trades(pos)
        cells.append({"k_enter": float(k_enter), "k_exit": float(k_exit), "enter": rule.enter,
                      "exit": rule.exit, "sharpe": sharpe, "trades": trades,
                      "eligible": bool(trades >= min_trades and math.isfinite(sharpe))})
    eligible = [c for c in cells if c["eligible"]]
    table = {"chosen": None, "cells": cells, "eligible": len(eligible),
             "min_trades": int(min_trades), "fee": float(fee), "funding": funding is not None}
    if not eligible:
        table["note"] = (f"no cell made {min_trades} trades with a finite Sharpe on the "
                         "validation data: the rule never trades (enter=inf)")
        return BandRule(math.inf, math.inf, long_only), table
    best = max(eligible, key=lambda c: (c["sharpe"], c["k_enter"], c["k_exit"]))
    table["chosen"] = best
    table["note"] = (f"k_enter={best['k_enter']}, k_exit={best['k_exit']}: best net Sharpe "
                     f"{best['sharpe']:.3f} of {len(eligible)} eligible cells")
    return BandRule(best["enter"], best["exit"], long_only), table


def cost_report(close, pos, fee: float = BYBIT_TAKER, periods_per_year: float = HOURS_PER_YEAR,
                funding=None) -> dict:
    """What trading costs do to ``pos`` (backtest_positions' conventions).

    Keys: ``gross_sharpe`` (no fee, no funding), ``net_sharpe`` (fees and funding),
    ``gross_mean``/``net_mean`` (per bar), ``turnover`` (sum of |Δpos| that pays the fee,
    the final close included), ``turnover_per_year`` (that / bars * periods_per_year),
    ``trades``, ``avg_holding_bars`` (bars in a position per trade; None without trades),
    ``exposure``, ``fees_paid``, ``funding_paid`` (positive: paid) and ``break_even_fee``.

    Break-even fee per side: fees are linear in turnover, so the net mean return per bar is
    ``mean(gross) - mean(funding) - f * turnover / bars`` and reaches zero at
    ``f* = (sum(gross) - sum(funding)) / turnover``; None when nothing is traded. A
    negative ``f*`` means the positions lose before any fee.
    """
    close, pos, funding = _inputs(close, pos, funding, "pos")
    n = len(close)
    if n == 0:
        raise ValueError("no bars")
    gross = backtest_positions(close, pos, 0.0)["returns"]
    net, fund = net_returns(close, pos, fee, funding)
    turnover = backtest_positions(close, pos, fee)["turnover"]  # what the fee is paid on
    trades, held = count_trades(pos), int(np.count_nonzero(pos[:-1]))
    return {
        "gross_sharpe": _sharpe(gross, periods_per_year),
        "net_sharpe": _sharpe(net, periods_per_year),
        "gross_mean": float(gross.mean()),
        "net_mean": float(net.mean()),
        "turnover": turnover,
        "turnover_per_year": turnover / n * periods_per_year,
        "trades": trades,
        "avg_holding_bars": held / trades if trades else None,
        "exposure": held / max(n - 1, 1),
        "fees_paid": float(fee) * turnover,
        "funding_paid": float(fund.sum()),
        "break_even_fee": (float(gross.sum() - fund.sum()) / turnover) if turnover else None,
    }
