"""quantstats tear sheets and metric tables from return series, and the strict metrics JSON.

Everything handed to quantstats is a tz-naive float Series on one row per day: intraday
returns are compounded to UTC calendar days first (quantstats 0.0.86 reads every row as a
day: "Best Day", "Daily VaR", "Win Days", the cumulative-sum panels), and the benchmark is
aligned exactly to the returns' index (a ticker string would be downloaded from Yahoo,
offline an all-zero benchmark without an error; a Series stamped differently is re-sampled
through a daily calendar into zeros). The policies for NaN, ruin and a late benchmark are
in ``analyzers.returns``.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .calendar import detect_calendar
from .metrics import json_safe, to_naive_utc
from .returns import check_returns, daily_periods, is_intraday, report_benchmark, to_daily

__all__ = [
    "agg_backend",
    "frequency_note",
    "qs_compat",
    "quantstats_table",
    "quiet_fonts",
    "sheet_series",
    "to_quantstats",
    "write_metrics_json",
    "write_tearsheet",
]


@contextlib.contextmanager
def quiet_fonts():
    """Mute matplotlib's "findfont: Font family 'Arial' not found" log lines (quantstats asks
    for Arial), and nothing else: warnings and other loggers pass through untouched."""
    logger = logging.getLogger("matplotlib.font_manager")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def agg_backend():
    """Draw with the headless Agg backend inside the block (quantstats uses pyplot, and
    ``backtrader.plot`` switches matplotlib to TkAgg when it is imported)."""
    import matplotlib.pyplot as plt

    previous = plt.get_backend()
    before = set(plt.get_fignums())
    if previous.lower() != "agg":
        plt.switch_backend("Agg")
    try:
        yield
    finally:
        for num in set(plt.get_fignums()) - before:
            plt.close(num)
        if previous.lower() != "agg":
            with contextlib.suppress(Exception):
                plt.switch_backend(previous)


@contextlib.contextmanager
def qs_compat():
    """Work around quantstats 0.0.86 failures on legitimate input, for the block only.

    - ``qs.stats.r_squared`` calls ``scipy.stats.linregress``, which raises on a constant
      series; a strategy that never trades (all-zero returns) with a benchmark made
      ``qs.reports.html``/``metrics`` raise. R² is undefined there: NaN ("-" in the report).
    """
    import quantstats as qs

    original = qs.stats.r_squared

    def r_squared(*args, **kwargs):
        try:
            return original(*args, **kwargs)
        except ValueError:
            return float("nan")

    qs.stats.r_squared = r_squared
    try:
        yield qs
    finally:
        qs.stats.r_squared = original


def to_quantstats(returns: pd.Series, benchmark: pd.Series | None = None):
    """``(returns, benchmark)`` as quantstats wants them: float, tz-naive (UTC), and the
    benchmark on exactly the returns' index (0 % where it has no data, see
    ``analyzers.returns.report_benchmark``). Raises ``ValueError`` for NaN/infinite returns
    or returns below -100 % (``check_returns``): they are never read as 0 %."""
    r = pd.Series(returns, dtype="float64")
    r.index = to_naive_utc(r.index)
    check_returns(r)
    b, _ = report_benchmark(benchmark, r.index)
    return r, b


def sheet_series(returns, benchmark=None, periods_per_year: int = 252, calendar: str = "auto",
                 daily="auto"):
    """The rows the tear sheet is built from: ``(returns, benchmark, periods_per_year,
    compounded)``.

    quantstats reads every row as a day, so intraday returns (``daily="auto"``: some UTC day
    holds several rows; ``True`` forces it, ``False`` never) are compounded to UTC calendar
    days and annualised with the days of ``calendar`` (252 equities, 365 crypto; ``"auto"``
    reads it from the index); daily and coarser rows keep ``periods_per_year``.
    """
    r, b = to_quantstats(returns, benchmark)
    compound = is_intraday(r.index) if daily == "auto" else bool(daily)
    if not compound:
        return r, b, int(periods_per_year), False
    if calendar == "auto":
        calendar = detect_calendar(r.index)
    return (to_daily(r), to_daily(b) if b is not None else None, daily_periods(calendar),
            True)


def frequency_note(n_bars: int, n_days: int, days_per_year: int, bar_periods: int) -> str:
    """The sheet's line saying that its figures are daily and where the bar numbers are."""
    return (
        f"Intraday returns ({n_bars:,} bars) are compounded to {n_days:,} UTC calendar days for "
        f"this sheet: every figure and chart here is daily, annualised with {days_per_year} "
        f"days a year. metrics.json keeps the bar-frequency numbers under \"metrics\" "
        f"({bar_periods} bars a year) and this sheet's under \"tearsheet\"."
    )


def _parse_cell(value):
    if isinstance(value, str):
        text = value.strip().replace(",", "")
        if text in ("-", "", "nan", "inf", "-inf"):
            return None, False
        pct = text.endswith("%")
        try:
            return float(text.rstrip("%")), pct
        except ValueError:
            return value, False
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value), False
    return value, False


def quantstats_table(returns, benchmark=None, periods_per_year: int = 252, rf: float = 0.0,
                     calendar: str = "auto", daily="auto"):
    """quantstats' full metric table (the one in the tear sheet) as ``{"strategy": {...},
    "benchmark": {...}}``, from the same rows as the sheet (``sheet_series``: intraday
    returns compounded to days). Rows that quantstats prints in percent keep that unit and
    get a ``" %"`` suffix (``"Max Drawdown %": -16.62``); ``"-"`` becomes None. quantstats
    rounds these to two decimals: use ``compute_metrics`` for exact numbers."""
    r, b, ppy, _ = sheet_series(returns, benchmark, periods_per_year, calendar, daily)
    with quiet_fonts(), qs_compat() as qs:
        table = qs.reports.metrics(
            r, benchmark=b, rf=rf, display=False, mode="full", internal="True",
            periods_per_year=int(ppy), match_dates=False, prepare_returns=False,
            strategy_title="Strategy", benchmark_title="Benchmark",
        )
    out = {}
    for column, key in (("Strategy", "strategy"), ("Benchmark", "benchmark")):
        if column not in table.columns:
            continue
        rows = {}
        for name, cell in table[column].items():
            label = str(name).replace("\ufe6a", "").strip()
            if not label:
                continue
            value, pct = _parse_cell(cell)
            rows[f"{label} %" if pct else label] = value
        out[key] = rows
    return out


def write_tearsheet(
    returns: pd.Series,
    path,
    benchmark: pd.Series | None = None,
    periods_per_year: int = 252,
    rf: float = 0.0,
    title: str = "Strategy Tearsheet",
    strategy_name: str = "Strategy",
    benchmark_name: str = "Benchmark",
    calendar: str = "auto",
    daily="auto",
    notes: list[str] | None = None,
) -> Path:
    """Write quantstats' HTML tear sheet for a returns Series; returns the path.

    Built from ``sheet_series``: intraday returns are compounded to UTC calendar days (as
    quantstats expects one row per day) and the sheet says so under its title, with any
    ``notes`` (``None``: the frequency line only when compounded). The whole series is
    reported (``match_dates=False``): the numbers match ``compute_metrics`` on the same rows
    instead of silently starting where both the strategy and the benchmark first move.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    r, b, ppy, compounded = sheet_series(returns, benchmark, periods_per_year, calendar, daily)
    if len(r) < 2:
        raise ValueError(f"a tear sheet needs at least two periods, got {len(r)}")
    if notes is None:
        notes = [frequency_note(len(returns), len(r), ppy, int(periods_per_year))] \
            if compounded else []
    with quiet_fonts(), agg_backend(), qs_compat() as qs:
        qs.reports.html(
            r, benchmark=b.rename(benchmark_name) if b is not None else None, rf=rf,
            title=title, output=str(path), periods_per_year=int(ppy),
            match_dates=False, strategy_title=strategy_name, benchmark_title=benchmark_name,
        )
    if notes:
        _insert_notes(path, notes)
    return path


def _insert_notes(path: Path, notes: list[str]) -> None:
    """Put ``notes`` under the sheet's heading (after quantstats' parameter line)."""
    text = path.read_text(encoding="utf-8")
    block = "".join(f'<p class="s4-note" style="margin:4px 0;color:#555">{html.escape(n)}</p>'
                    for n in notes)
    anchor = text.find("</h4>")
    at = anchor + len("</h4>") if anchor >= 0 else text.find("<body>") + len("<body>")
    path.write_text(text[:at] + block + text[at:], encoding="utf-8")


def write_metrics_json(path, payload: dict) -> Path:
    """Strict JSON (NaN and inf as null) of ``payload``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_safe(payload), indent=2, allow_nan=False), encoding="utf-8")
    return path
