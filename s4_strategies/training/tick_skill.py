"""Skill of a next-mid-move forecast on the test blocks of a walk-forward, and the gate.

Scored per fold and on the pooled test blocks, over rows with a label, for a forecast ``p``
of ``y`` (the mid log return over the next ``horizon_s`` seconds)::

    corr     Pearson correlation of p and y                       (skill.corr)
    R2       1 - sum (y - p)^2 / sum y^2: out of sample, against the zero forecast
             (Campbell & Thompson 2008); > 0 means p beats "no move"
    hit      share of rows with y != 0 and p != 0 where sign(p) = sign(y)

Forecasts: the S4D model, a ridge regression on the same features (``baselines.OLS``),
and the current lean, the EMA slope of the market maker (``RollingEstimator.ema_drift``:
time-aware EMAs of the mid, time constants 10 s and 60 s, updated per event), as a log
return over the horizon (``mu·horizon/mid``; its R2 is not meaningful, its scale being
the strategy's, so only corr and hit are reported).

The gate (``has_skill``), decided on the pooled test blocks only, stated in ``RULE``.
"""

from __future__ import annotations

import math

import numpy as np

from . import skill

RULE = ("has_skill = pooled out-of-sample R2 vs zero > 0 AND the 95 % moving-block bootstrap "
        "interval of the pooled correlation lies above 0 AND R2 > 0 in at least half of the "
        "folds")


def r2_vs_zero(pred, y) -> float:
    """``1 - sum (y - p)^2 / sum y^2`` over finite pairs (NaN when none or all y are 0)."""
    p, t = skill._paired(pred, y)
    den = float(t @ t)
    return 1.0 - float((t - p) @ (t - p)) / den if den > 0 else math.nan


def hit_rate(pred, y) -> float:
    """Share of finite pairs with ``y != 0`` and ``p != 0`` whose signs agree (NaN if none)."""
    p, t = skill._paired(pred, y)
    keep = (p != 0) & (t != 0)
    return float(np.mean(np.sign(p[keep]) == np.sign(t[keep]))) if keep.any() else math.nan


def scores(pred, y) -> dict:
    """``n``, ``corr``, ``r2``, ``hit`` of one forecast."""
    p, t = skill._paired(pred, y)
    return {"n": len(t), "corr": skill.corr(p, t), "r2": r2_vs_zero(p, t),
            "hit": hit_rate(p, t)}


def ema_slope_lean(t_s: np.ndarray, mid: np.ndarray, fast: float = 10.0,
                   slow: float = 60.0) -> np.ndarray:
    """The market maker's EMA drift (price per second) after every event, as
    ``RollingEstimator.ema_drift`` computes it: per event with ``dt > 0``,
    ``ema += (1 - e^{-dt/tc})(mid - ema)`` for both EMAs and the spacing average ``dt_avg``
    (time constant ``slow``); ``mu = (fast - slow)/(lag_slow - lag_fast)`` with
    ``lag = dt_avg (1 - alpha)/alpha``; 0 during the first ``slow`` seconds."""
    n = len(mid)
    out = np.zeros(n)
    ef = es = float(mid[0])
    dt_avg = None
    for i in range(1, n):
        dt = t_s[i] - t_s[i - 1]
        if dt > 0:
            dt_avg = dt if dt_avg is None else dt_avg - math.expm1(-dt / slow) * (dt - dt_avg)
            ef -= math.expm1(-dt / fast) * (mid[i] - ef)
            es -= math.expm1(-dt / slow) * (mid[i] - es)
        if dt_avg is None or t_s[i] - t_s[0] < slow:
            continue
        af, as_ = -math.expm1(-dt_avg / fast), -math.expm1(-dt_avg / slow)
        lag_f, lag_s = dt_avg * (1 - af) / af, dt_avg * (1 - as_) / as_
        if lag_s - lag_f > 1e-9 * max(lag_s, 1.0):
            out[i] = (ef - es) / (lag_s - lag_f)
    return out


def fold_row(name: str, test: tuple[int, int], y, forecasts: dict) -> dict:
    """One table row: the scores of every forecast on rows [test)."""
    sl = slice(*test)
    return {"fold": name, "rows": list(test),
            **{k: scores(f[sl], y[sl]) for k, f in forecasts.items()}}


def pooled_row(rows: np.ndarray, y, forecasts: dict, h: int, block: int,
               n_boot: int = 500, seed: int = 0) -> dict:
    """Scores on the pooled test rows, the bootstrap interval of the model's correlation
    (moving blocks of ``block`` rows: labels of neighbouring rows overlap by ``h``), and
    the Diebold–Mariano test of its squared errors against the ridge's (HLN, lag ``h``)."""
    out = {"fold": "pooled", **{k: scores(f[rows], y[rows]) for k, f in forecasts.items()}}
    p, t = skill._paired(forecasts["s4d"][rows], y[rows])
    out["s4d"]["corr_ci"] = list(skill.block_bootstrap_ci(skill.corr, p, t, block=block,
                                                          n=n_boot, seed=seed))
    q, _ = skill._paired(forecasts["ridge"][rows], y[rows])
    out["dm_vs_ridge"] = skill.diebold_mariano((p - t) ** 2, (q - t) ** 2, h=h)
    return out


def decide(folds: list[dict], pooled: dict) -> bool:
    """``RULE`` on the model's scores."""
    s = pooled["s4d"]
    fold_r2 = [f["s4d"]["r2"] for f in folds]
    majority = sum(r > 0 for r in fold_r2 if math.isfinite(r)) * 2 >= len(fold_r2)
    return bool(s["r2"] > 0 and s["corr_ci"][0] > 0 and majority)


def _f(x, fmt="{:+.3f}") -> str:
    return "n/a" if x is None or not math.isfinite(x) else fmt.format(x)


def skill_table(folds: list[dict], pooled: dict) -> str:
    """The markdown table: per fold and pooled, model vs ridge vs the EMA lean."""
    head = ("| fold | test rows | n | S4D corr | S4D R² | S4D hit | ridge corr | ridge R² "
            "| ridge hit | EMA lean corr | EMA lean hit |")
    lines = [head, "|" + "---|" * 11]
    for r in [*folds, pooled]:
        s, b, e = r["s4d"], r["ridge"], r["ema_lean"]
        rows = f"{r['rows'][0]}–{r['rows'][1]}" if "rows" in r else "all"
        lines.append(f"| {r['fold']} | {rows} | {s['n']} | {_f(s['corr'])} | "
                     f"{_f(s['r2'], '{:+.4f}')} | {_f(s['hit'], '{:.3f}')} | {_f(b['corr'])} | "
                     f"{_f(b['r2'], '{:+.4f}')} | {_f(b['hit'], '{:.3f}')} | {_f(e['corr'])} | "
                     f"{_f(e['hit'], '{:.3f}')} |")
    ci = pooled["s4d"]["corr_ci"]
    dm = pooled["dm_vs_ridge"]
    lines.append("")
    lines.append(f"Pooled S4D correlation 95 % block-bootstrap interval: [{_f(ci[0])}, "
                 f"{_f(ci[1])}]; Diebold–Mariano (squared error) S4D vs ridge: "
                 f"stat {_f(dm['stat'], '{:+.2f}')}, p {_f(dm['p_value'], '{:.3f}')} "
                 "(negative: S4D has the lower loss).")
    return "\n".join(lines)
