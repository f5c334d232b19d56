"""Performance metrics as plain functions: returns in, numbers out. No Cerebro needed.

``compute_metrics`` gives the headline numbers of a return series with the same
definitions as quantstats 0.0.86 (``qs.stats.sharpe``, ``sortino``, ``cagr``, ...), computed
here with numpy so that they are fast, exact (quantstats' report table rounds to two
decimals) and defined on degenerate input (all-zero, one bar, no losing bar)::

    from analyzers.metrics import compute_metrics, infer_periods_per_year
    ppy = infer_periods_per_year(returns.index)          # 252, 365, 8760, ...
    m = compute_metrics(returns, ppy, benchmark=bench)   # {"sharpe": 1.2, ...}
    json.dumps(json_safe(m))                            # NaN/inf -> null

Conventions: returns are simple per-period returns; ``rf`` is an annual rate, turned into a
per-period rate as ``(1 + rf) ** (1 / periods_per_year) - 1`` (as quantstats does); a ratio
whose denominator is zero is ``inf`` (signed) when its numerator is not zero and ``NaN``
when both are zero.
"""

from __future__ import annotations

import datetime as _dt
import math

import numpy as np
import pandas as pd

from feeds.bartime import to_naive_utc

from .calendar import align_benchmark, detect_calendar, infer_periods_per_year

__all__ = [
    "align_benchmark",
    "bootstrap_sharpe_ci",
    "compute_metrics",
    "detect_calendar",
    "infer_periods_per_year",
    "json_safe",
    "to_naive_utc",
]


def _ratio(num: float, den: float) -> float:
    if not (np.isfinite(num) and np.isfinite(den)):
        return float("nan")
    if den == 0:
        return float("nan") if num == 0 else math.copysign(float("inf"), num)
    return float(num / den)


def _clean(returns) -> pd.Series:
    r = pd.Series(returns, dtype="float64").replace([np.inf, -np.inf], np.nan).dropna()
    if isinstance(r.index, pd.DatetimeIndex):
        r.index = to_naive_utc(r.index)
    return r


def _no_negative_wealth(r: pd.Series, what: str) -> None:
    below = r.to_numpy() < -1.0
    if below.any():
        raise ValueError(
            f"{what} hold {int(below.sum())} return(s) below -100 % (first at "
            f"{r.index[below][0]}): the equity went negative, where no ratio means anything; "
            "an account whose equity reaches zero is ruined (analyzers.returns.equity_returns)"
        )


def _per_period_rf(rf: float, periods_per_year: float) -> float:
    return (1.0 + rf) ** (1.0 / periods_per_year) - 1.0 if rf else 0.0


def _drawdown(r: np.ndarray) -> tuple[float, int]:
    """Maximum drawdown (≤ 0, from a starting wealth of 1) and the longest run under water."""
    if len(r) == 0:
        return 0.0, 0
    wealth = np.cumprod(1.0 + r)
    peak = np.maximum.accumulate(np.concatenate([[1.0], wealth]))[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = wealth / peak - 1.0
    under = dd < 0
    steps = np.arange(len(r))
    last_high = np.maximum.accumulate(np.where(under, -1, steps))  # -1: under water from bar 0
    longest = int((steps - last_high).max()) if under.any() else 0
    return float(min(0.0, np.nanmin(dd))), longest


def _cagr(r: np.ndarray, periods_per_year: float) -> float:
    if len(r) == 0:
        return float("nan")
    wealth = float(np.prod(1.0 + r))
    if wealth < 0:
        return float("nan")
    if wealth == 0:
        return -1.0
    with np.errstate(over="ignore"):
        return float(np.expm1(np.log(wealth) * periods_per_year / len(r)))


def _sharpe(r: np.ndarray, periods_per_year: float, rf: float = 0.0) -> float:
    if len(r) < 2:
        return float("nan")
    ex = r - _per_period_rf(rf, periods_per_year)
    return _ratio(ex.mean(), ex.std(ddof=1)) * math.sqrt(periods_per_year)


def _core(r: np.ndarray, ppy: float, rf: float) -> dict:
    n = len(r)
    ex = r - _per_period_rf(rf, ppy)
    wins, losses = r[r > 0], r[r < 0]
    downside = math.sqrt(float((ex[ex < 0] ** 2).sum()) / n) if n else float("nan")
    max_dd, dd_len = _drawdown(r)
    cagr = _cagr(r, ppy)
    std = float(r.std(ddof=1)) if n > 1 else float("nan")
    s = pd.Series(r)
    return {
        "total_return": float(np.prod(1.0 + r) - 1.0) if n else float("nan"),
        "cagr": cagr,
        "volatility": std * math.sqrt(ppy),
        "sharpe": _sharpe(r, ppy, rf),
        "sortino": _ratio(ex.mean(), downside) * math.sqrt(ppy) if n else float("nan"),
        "max_drawdown": max_dd,
        "max_drawdown_periods": dd_len,
        "calmar": _ratio(cagr, abs(max_dd)),
        "win_rate": _ratio(len(wins), len(wins) + len(losses)),
        "profit_factor": _ratio(float(wins.sum()), abs(float(losses.sum()))),
        "avg_return": float(r.mean()) if n else float("nan"),
        "avg_win": float(wins.mean()) if len(wins) else float("nan"),
        "avg_loss": float(losses.mean()) if len(losses) else float("nan"),
        "payoff_ratio": _ratio(
            float(wins.mean()) if len(wins) else float("nan"),
            abs(float(losses.mean())) if len(losses) else 0.0,
        ),
        "exposure": float(np.count_nonzero(r) / n) if n else float("nan"),
        "best": float(r.max()) if n else float("nan"),
        "worst": float(r.min()) if n else float("nan"),
        "skew": float(s.skew()) if n > 2 else float("nan"),
        "kurtosis": float(s.kurt()) if n > 3 else float("nan"),
        "var_95": float(np.quantile(r, 0.05)) if n else float("nan"),
    }


def compute_metrics(
    returns: pd.Series,
    periods_per_year: int,
    benchmark: pd.Series | None = None,
    rf: float = 0.0,
) -> dict:
    """Headline metrics of a simple-return series, all plain floats (NaN/inf where undefined).

    Keys: ``total_return, cagr, volatility, sharpe, sortino, max_drawdown`` (≤ 0),
    ``max_drawdown_periods, calmar, win_rate, profit_factor, avg_return, avg_win, avg_loss,
    payoff_ratio, exposure`` (share of non-zero periods), ``best, worst, skew, kurtosis,
    var_95`` (historical 5% quantile), ``n_periods, years, periods_per_year, rf``.
    With a benchmark (returns, aligned with ``align_benchmark`` when stamped differently):
    ``benchmark_<key>`` for the benchmark's own numbers over its span, and ``beta, alpha``
    (annualised as quantstats: ``(mean(r) - beta * mean(b)) * ppy``), ``correlation,
    r_squared, tracking_error, information_ratio`` (annualised) over the common periods.

    NaN returns are dropped (use ``analyzers.returns.check_returns`` to refuse them); a
    return below -100 % (negative equity) raises ``ValueError``.

    Same definitions as quantstats (``sharpe``/``sortino``/``volatility``/``cagr`` use the count
    of periods, ``max_drawdown`` starts from a wealth of 1, win rate ignores flat periods);
    where quantstats returns 0.0 for an undefined value (win rate or profit factor of a
    series without a single non-zero return) this returns NaN.
    """
    ppy = float(periods_per_year)
    if not ppy > 0:
        raise ValueError(f"periods_per_year must be positive, not {periods_per_year!r}")
    r = _clean(returns)
    _no_negative_wealth(r, "returns")
    out = _core(r.to_numpy(), ppy, rf)
    out.update(n_periods=len(r), years=len(r) / ppy, periods_per_year=ppy, rf=float(rf))
    if benchmark is None:
        return out
    b = pd.Series(benchmark, dtype="float64")
    if isinstance(b.index, pd.DatetimeIndex) and isinstance(r.index, pd.DatetimeIndex):
        b.index = to_naive_utc(b.index)
        if not b.index.equals(r.index):
            b = align_benchmark(b, r.index)
    b = b.replace([np.inf, -np.inf], np.nan)
    bench = b.dropna()
    _no_negative_wealth(bench, "benchmark returns")
    for key, value in _core(bench.to_numpy(), ppy, rf).items():
        out[f"benchmark_{key}"] = value
    out.update(benchmark_n_periods=len(bench), benchmark_years=len(bench) / ppy)
    pair = pd.concat([r.rename("r"), b.rename("b")], axis=1, join="inner").dropna()
    x, y = pair["r"].to_numpy(), pair["b"].to_numpy()
    if len(pair) > 1:
        var_b = float(np.var(y, ddof=1))
        beta = _ratio(float(np.cov(x, y, ddof=1)[0, 1]), var_b) if var_b else float("nan")
        active = x - y
        te = float(active.std(ddof=1))
        corr = float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else float("nan")
        out.update(
            beta=beta,
            alpha=(float(x.mean()) - beta * float(y.mean())) * ppy,
            correlation=corr,
            r_squared=corr**2,
            tracking_error=te * math.sqrt(ppy),
            information_ratio=_ratio(float(active.mean()), te) * math.sqrt(ppy),
        )
    else:
        out.update({k: float("nan") for k in ("beta", "alpha", "correlation", "r_squared",
                                               "tracking_error", "information_ratio")})
    return out


# ---------------------------------------------------------------- bootstrap


def _politis_white(r: np.ndarray, method: str) -> float:
    """Politis & White's (2004, corrected 2009) automatic block length of ``r`` for the
    bootstrap ``method`` (``arch.bootstrap.optimal_block_length``), in [1, len / 10]."""
    from arch.bootstrap import optimal_block_length

    if len(r) < 10:
        return 1.0
    b = float(optimal_block_length(r)["stationary" if method == "stationary" else
                                      "circular"].iloc[0])
    return float(min(max(b if math.isfinite(b) else 1.0, 1.0), max(1.0, len(r) / 10.0)))


def bootstrap_sharpe_ci(
    returns,
    periods_per_year: int,
    n: int = 1000,
    block: float | None = None,
    seed: int | None = None,
    level: float = 0.95,
    method: str = "stationary",
    rf: float = 0.0,
) -> tuple[float, float]:
    """Percentile confidence interval of the annualised Sharpe ratio by resampling, with
    ``arch``'s bootstraps.

    ``method="stationary"`` (Politis–Romano, random block lengths with mean ``block``) or
    ``"block"`` (circular blocks of fixed length). Blocks keep the autocorrelation and
    volatility clustering that an i.i.d. bootstrap would destroy; ``block=None`` uses
    Politis & White's automatic length for the series (``arch.bootstrap.
    optimal_block_length``, at least 1 and at most a tenth of the sample), ``block=1`` is
    the plain i.i.d. bootstrap. Returns ``(lo, hi)``; ``(nan, nan)`` for fewer than 3
    periods or a constant series.
    """
    from arch.bootstrap import CircularBlockBootstrap, StationaryBootstrap

    if method not in ("stationary", "block"):
        raise ValueError(f"method must be 'stationary' or 'block', not {method!r}")
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    r = _clean(returns).to_numpy() - _per_period_rf(rf, float(periods_per_year))
    length = len(r)
    if length < 3 or np.all(r == r[0]):
        return float("nan"), float("nan")
    block = max(1.0, float(block) if block is not None else _politis_white(r, method))
    rng = np.random.default_rng(seed)
    if method == "stationary":
        bs = StationaryBootstrap(block, r, seed=rng)
    else:
        bs = CircularBlockBootstrap(max(1, int(round(block))), r, seed=rng)
    sharpe = np.empty(n)
    for i, (pos, _) in enumerate(bs.bootstrap(n)):
        sample = pos[0]  # (length,) one replicate of the returns
        sd = sample.std(ddof=1)
        sharpe[i] = sample.mean() / sd if sd > 0 else np.nan
    sharpe = sharpe[np.isfinite(sharpe)] * math.sqrt(periods_per_year)
    if len(sharpe) == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(sharpe, [tail, 100.0 - tail])
    return float(lo), float(hi)


# ---------------------------------------------------------------- JSON


def json_safe(obj):
    """A copy that ``json.dumps`` writes as strict JSON: NaN/inf -> None, numpy -> Python,
    timestamps -> ISO strings, Series -> ``{iso: value}``."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, pd.Series):
        return {str(k.isoformat() if hasattr(k, "isoformat") else k): json_safe(v)
                for k, v in obj.items()}
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if obj is None or obj is pd.NaT or isinstance(obj, str):
        return None if obj is pd.NaT else obj
    if isinstance(obj, (pd.Timestamp, _dt.datetime, _dt.date)):
        return obj.isoformat()
    return str(obj)
