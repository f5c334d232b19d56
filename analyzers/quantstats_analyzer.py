"""``QuantStatsAnalyzer``: the portfolio's returns, metrics and a quantstats tear sheet.

::

    cerebro.addanalyzer(QuantStatsAnalyzer, _name="quantstats", output="runs/x/tearsheet.html")
    strat = cerebro.run()[0]
    res = strat.analyzers.quantstats.get_analysis()
    res["metrics"]["sharpe"], res["returns"], res["benchmark"]

Everything handed to quantstats is a tz-naive float Series, and the benchmark is aligned
exactly to the strategy's returns index first: quantstats downloads a ticker string from
Yahoo (offline that becomes an all-zero benchmark without an error) and re-samples a
Series whose index differs from the returns' through a *daily* calendar, which turns an
hourly benchmark stamped a little differently into zeros.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd

from feeds.bartime import num_to_index

from .metrics import (
    align_benchmark,
    compute_metrics,
    detect_calendar,
    infer_periods_per_year,
    json_safe,
    to_naive_utc,
)

__all__ = [
    "QuantStatsAnalyzer",
    "agg_backend",
    "qs_compat",
    "quantstats_table",
    "quiet_fonts",
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
    """``(returns, benchmark)`` as quantstats wants them: float, tz-naive (UTC), no NaN, and
    the benchmark on exactly the returns' index (zero where it has no data yet)."""
    r = pd.Series(returns, dtype="float64").fillna(0.0)
    r.index = to_naive_utc(r.index)
    if benchmark is None:
        return r, None
    b = align_benchmark(benchmark, r.index).fillna(0.0)
    return r, b


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


def quantstats_table(returns, benchmark=None, periods_per_year: int = 252, rf: float = 0.0):
    """quantstats' full metric table (the one in the tear sheet) as ``{"strategy": {...},
    "benchmark": {...}}``. Rows that quantstats prints in percent keep that unit and get a
    ``" %"`` suffix (``"Max Drawdown %": -16.62``); ``"-"`` becomes None. quantstats rounds
    these to two decimals: use ``compute_metrics`` for exact numbers."""
    r, b = to_quantstats(returns, benchmark)
    with quiet_fonts(), qs_compat() as qs:
        table = qs.reports.metrics(
            r, benchmark=b, rf=rf, display=False, mode="full", internal="True",
            periods_per_year=int(periods_per_year), match_dates=False, prepare_returns=False,
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
) -> Path:
    """Write quantstats' HTML tear sheet for a returns Series; returns the path.

    The whole series is reported (``match_dates=False``): the numbers match
    ``compute_metrics`` on the same series instead of silently starting where both the
    strategy and the benchmark first move.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    r, b = to_quantstats(returns, benchmark)
    if len(r) < 2:
        raise ValueError(f"a tear sheet needs at least two periods, got {len(r)}")
    with quiet_fonts(), agg_backend(), qs_compat() as qs:
        qs.reports.html(
            r, benchmark=b.rename(benchmark_name) if b is not None else None, rf=rf,
            title=title, output=str(path), periods_per_year=int(periods_per_year),
            match_dates=False, strategy_title=strategy_name, benchmark_title=benchmark_name,
        )
    return path


def write_metrics_json(path, payload: dict) -> Path:
    """Strict JSON (NaN and inf as null) of ``payload``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_safe(payload), indent=2, allow_nan=False), encoding="utf-8")
    return path


def _data_name(data) -> str:
    for name in (getattr(data.p, "name", None), getattr(data, "_name", None)):
        if name:
            return str(name)
    return data.p.dataname if isinstance(data.p.dataname, str) else "data0"


class QuantStatsAnalyzer(bt.Analyzer):
    """Portfolio value every bar -> returns, metrics and (with ``output=``) a tear sheet.

    Params:
      - ``benchmark``: ``"buyhold"`` (buy and hold of ``data``), a data feed (bought and held),
        a Series of benchmark *returns* (aligned to the strategy's bars), or ``None``
      - ``data``: the feed for ``"buyhold"`` (default: data0)
      - ``periods_per_year``: bars per year; ``None`` infers it from the bar timestamps and
        ``calendar`` (252 equity days, 365 crypto days, 8760 crypto hours, ...)
      - ``calendar``: ``"auto"`` (weekend bars mean crypto), ``"crypto"`` or ``"equities"``
      - ``rf``: annual risk-free rate
      - ``output``: path of the HTML tear sheet, written when the run stops; the metrics JSON
        goes beside it (``metrics.json`` next to ``tearsheet.html``, else ``<name>.metrics.json``)
        or to ``metrics_output``
      - ``title``, ``strategy_name``, ``benchmark_name``: labels in the tear sheet
      - ``qs_table``: add quantstats' full metric table to ``metrics["quantstats"]``

    ``get_analysis()``: ``returns`` and ``benchmark`` (Series on the same tz-naive UTC index;
    the benchmark NaN before it starts), ``value`` (portfolio value), ``metrics`` (see
    ``compute_metrics``; plus ``quantstats`` and ``quantstats_benchmark`` tables),
    ``periods_per_year``, ``calendar``, ``strategy_name``, ``benchmark_name``.
    """

    params = dict(
        benchmark="buyhold",
        data=None,
        periods_per_year=None,
        calendar="auto",
        rf=0.0,
        output=None,
        metrics_output=None,
        title=None,
        strategy_name=None,
        benchmark_name=None,
        qs_table=True,
    )

    def start(self):
        bench = self.p.benchmark
        if not (bench is None or isinstance(bench, (str, pd.Series, bt.AbstractDataBase))):
            raise TypeError(
                f"benchmark must be 'buyhold', a data feed, a Series or None, not {bench!r}"
            )
        if isinstance(bench, str) and bench != "buyhold":
            raise ValueError(
                f"benchmark={bench!r}: pass 'buyhold', a data feed, a returns Series or None "
                "(ticker strings are not downloaded: offline quantstats makes them all zero)"
            )
        if self.p.calendar not in ("auto", "crypto", "equities"):
            raise ValueError(
                f"calendar must be 'auto', 'crypto' or 'equities', not {self.p.calendar!r}"
            )
        self._bench_data = None
        if isinstance(bench, bt.AbstractDataBase):
            self._bench_data = bench
        elif isinstance(bench, str):  # "buyhold"
            self._bench_data = self.p.data if self.p.data is not None else self.strategy.datas[0]
        self._start_value = float(self.strategy.broker.getvalue())
        self._dt, self._value, self._close = [], [], []
        self.html_path = None

    def next(self):
        self._dt.append(self.strategy.datetime[0])
        self._value.append(self.strategy.broker.getvalue())
        if self._bench_data is not None:
            self._close.append(float(self._bench_data.close[0]))

    def _periods_per_year(self, index) -> int:
        if self.p.periods_per_year:
            return int(self.p.periods_per_year)
        if len(index) >= 2:
            return infer_periods_per_year(index, calendar=self.p.calendar)
        data = self.strategy.datas[0]
        try:
            return infer_periods_per_year(data._timeframe, self.p.calendar, data._compression)
        except (TypeError, ValueError):
            return 252

    def stop(self):
        index = num_to_index(self._dt, utc=False)
        value = pd.Series(self._value, index=index, dtype="float64", name="value")
        keep = ~index.duplicated(keep="last")
        value = value[keep]
        returns = value.pct_change()
        if len(value):
            returns.iloc[0] = value.iloc[0] / self._start_value - 1.0 if self._start_value else 0.0
        returns = returns.fillna(0.0)
        self.strategy_name = self.p.strategy_name or type(self.strategy).__name__
        benchmark = None
        self.benchmark_name = self.p.benchmark_name
        if self._bench_data is not None:
            close = pd.Series(self._close, index=index, dtype="float64")[keep].ffill()
            benchmark = close.pct_change().fillna(0.0)
            self.benchmark_name = (
                self.benchmark_name or f"{_data_name(self._bench_data)} buy & hold"
            )
        elif isinstance(self.p.benchmark, pd.Series):
            benchmark = align_benchmark(self.p.benchmark, returns.index)
            self.benchmark_name = self.benchmark_name or str(self.p.benchmark.name or "Benchmark")
        returns.name = self.strategy_name
        if benchmark is not None:
            benchmark.name = self.benchmark_name
        ppy = self._periods_per_year(returns.index)
        calendar = self.p.calendar
        if calendar == "auto":
            calendar = detect_calendar(returns.index)
        metrics = compute_metrics(returns, ppy, benchmark=benchmark, rf=self.p.rf)
        if self.p.qs_table and len(returns) >= 2:
            try:
                table = quantstats_table(returns, benchmark, ppy, self.p.rf)
                metrics["quantstats"] = table.get("strategy", {})
                if "benchmark" in table:
                    metrics["quantstats_benchmark"] = table["benchmark"]
            except Exception as exc:  # a report extra must not sink the backtest
                warnings.warn(f"quantstats metric table failed: {exc!r}", RuntimeWarning,
                              stacklevel=2)
        self.rets = dict(
            returns=returns, benchmark=benchmark, value=value, metrics=metrics,
            periods_per_year=ppy, calendar=calendar, strategy_name=self.strategy_name,
            benchmark_name=self.benchmark_name if benchmark is not None else None,
        )
        if self.p.output:
            if len(returns) >= 2:
                self.write_html(self.p.output)
            else:
                warnings.warn(f"no tear sheet: {len(returns)} bar(s) recorded", RuntimeWarning,
                              stacklevel=2)
            self.write_json(self.p.metrics_output or self.default_json_path(self.p.output))

    def get_analysis(self):
        return self.rets

    @staticmethod
    def default_json_path(output) -> Path:
        output = Path(output)
        if output.name == "tearsheet.html":
            return output.with_name("metrics.json")
        return output.with_suffix(".metrics.json")

    @property
    def title(self) -> str:
        if self.p.title:
            return self.p.title
        if self.rets.get("benchmark") is not None:
            return f"{self.strategy_name} vs {self.benchmark_name}"
        return self.strategy_name

    def write_html(self, path) -> Path:
        """The quantstats tear sheet of this run (not redrawn if already written there)."""
        path = Path(path)
        if self.html_path is not None and self.html_path.resolve() == path.resolve() \
                and path.exists():
            return path
        a = self.rets
        self.html_path = write_tearsheet(
            a["returns"], path, benchmark=a["benchmark"], periods_per_year=a["periods_per_year"],
            rf=self.p.rf, title=self.title, strategy_name=self.strategy_name,
            benchmark_name=self.benchmark_name or "Benchmark",
        )
        return self.html_path

    def summary(self) -> dict:
        """What ``metrics.json`` holds: labels, span, annualisation and the metrics."""
        a = self.rets
        idx = a["returns"].index
        return dict(
            title=self.title, strategy=self.strategy_name, benchmark=a["benchmark_name"],
            start=idx[0] if len(idx) else None, end=idx[-1] if len(idx) else None,
            periods_per_year=a["periods_per_year"], calendar=a["calendar"], rf=self.p.rf,
            metrics=a["metrics"],
        )

    def write_json(self, path, extra: dict | None = None) -> Path:
        return write_metrics_json(path, {**self.summary(), **(extra or {})})
