"""``QuantStatsAnalyzer``: the portfolio's returns, metrics and a quantstats tear sheet.

::

    cerebro.addanalyzer(QuantStatsAnalyzer, _name="quantstats", output="runs/x/tearsheet.html")
    strat = cerebro.run()[0]
    res = strat.analyzers.quantstats.get_analysis()
    res["metrics"]["sharpe"], res["returns"], res["benchmark"]

Two frequencies, said on the sheet and in ``metrics.json``: ``metrics`` holds the numbers
of the bars themselves (hourly crypto: Sharpe annualised with 8760 bars a year), while the
tear sheet is built from returns compounded to UTC calendar days (quantstats reads every
row as a day); its numbers are in ``tearsheet["metrics"]`` and ``metrics["quantstats"]``.
Daily bars (equities, crypto dailies) are not compounded: both are the same.

Policies (``analyzers.returns``), the same for the sheet and the JSON:

- equity at or below zero: the account is ruined; the return of that bar is −100 % and the
  returns stop there; ``ruined_at`` (and a ``RuntimeWarning``, a line on the sheet, a note
  in the JSON) says when;
- a NaN or infinite portfolio value: ``ValueError`` naming the bar (never a 0 % return);
  a starting value that is not positive: ``ValueError``;
- a benchmark that starts later (or has gaps) is flat (0 %) where it has no value, and its
  numbers and the relative ones (beta, ...) cover the strategy's whole span in both
  reports; ``benchmark_start`` says where it begins. ``get_analysis()["benchmark"]`` keeps
  NaN before that.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd

from feeds.bartime import num_to_index

from .calendar import align_benchmark
from .metrics import compute_metrics, detect_calendar, infer_periods_per_year
from .returns import equity_returns, report_benchmark
from .tearsheet import (
    agg_backend,
    frequency_note,
    qs_compat,
    quantstats_table,
    quiet_fonts,
    sheet_series,
    to_quantstats,
    write_metrics_json,
    write_tearsheet,
)

__all__ = [
    "BENCHMARKS",
    "QuantStatsAnalyzer",
    "equal_weight_value",
    "agg_backend",
    "qs_compat",
    "quantstats_table",
    "quiet_fonts",
    "to_quantstats",
    "write_metrics_json",
    "write_tearsheet",
]


def _data_name(data) -> str:
    for name in (getattr(data.p, "name", None), getattr(data, "_name", None)):
        if name:
            return str(name)
    return data.p.dataname if isinstance(data.p.dataname, str) else "data0"


BENCHMARKS = ("buyhold", "equal_weight")


def equal_weight_value(close: pd.DataFrame) -> pd.Series:
    """The value of an equal-weight buy and hold of the columns of ``close`` (one asset
    each, NaN before it starts), starting at 1: each asset gets 1/N, held as cash until its
    first close, then bought there and held (no rebalancing)::

        value_t = (1/N) Σ_a (close_a,t / close_a,first  if t ≥ first_a  else 1)
    """
    close = close.astype("float64").ffill()
    first = close.apply(lambda c: c.loc[c.first_valid_index()] if c.notna().any() else np.nan)
    growth = (close / first).fillna(1.0)  # (T, N)  cash before an asset's first close
    return growth.mean(axis=1).rename("value")


class QuantStatsAnalyzer(bt.Analyzer):
    """Portfolio value every bar -> returns, metrics and (with ``output=``) a tear sheet.

    Params:
      - ``benchmark``: ``"buyhold"`` (buy and hold of ``data``), ``"equal_weight"`` (buy and
        hold of every data: 1/N of the starting value each, bought at its first close, cash
        until then; see :func:`equal_weight_value`), a data feed (bought and held), a Series
        of benchmark *returns* (aligned to the strategy's bars), or ``None``
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
      - ``sample``: a pandas frequency (``"1s"``, ``"1min"``): the value at the end of each
        such UTC interval instead of every bar (tick data, whose irregular events cannot be
        annualised); a value ``<= 0`` still ends the record where it happens

    ``get_analysis()``: ``returns`` and ``benchmark`` (Series on the same tz-naive UTC index;
    the benchmark NaN before it starts; the returns end at ``ruined_at`` if the account was
    ruined), ``value`` (portfolio value, every bar), ``metrics`` (bar frequency, see
    ``compute_metrics``; plus ``quantstats`` and ``quantstats_benchmark``: the sheet's
    table), ``periods_per_year``, ``calendar``, ``strategy_name``, ``benchmark_name``,
    ``benchmark_start``, ``ruined_at``, ``notes`` (the lines on the sheet) and ``tearsheet``
    (``returns``, ``benchmark``, ``periods_per_year``, ``compounded``, ``metrics``: what the
    sheet shows).
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
        sample=None,
    )

    def start(self):
        bench = self.p.benchmark
        if not (bench is None or isinstance(bench, (str, pd.Series, bt.AbstractDataBase))):
            raise TypeError(
                f"benchmark must be 'buyhold', a data feed, a Series or None, not {bench!r}"
            )
        if isinstance(bench, str) and bench not in BENCHMARKS:
            raise ValueError(
                f"benchmark={bench!r}: pass 'buyhold', 'equal_weight', a data feed, a returns "
                "Series or None "
                "(ticker strings are not downloaded: offline quantstats makes them all zero)"
            )
        if self.p.calendar not in ("auto", "crypto", "equities"):
            raise ValueError(
                f"calendar must be 'auto', 'crypto' or 'equities', not {self.p.calendar!r}"
            )
        self._bench_data = None
        if isinstance(bench, bt.AbstractDataBase):
            self._bench_data = [bench]
        elif isinstance(bench, str) and bench == "equal_weight":
            self._bench_data = list(self.strategy.datas)
        elif isinstance(bench, str):  # "buyhold"
            self._bench_data = [self.p.data if self.p.data is not None
                                else self.strategy.datas[0]]
        self._start_value = float(self.strategy.broker.getvalue())
        self._dt, self._value, self._close = [], [], []
        self.html_path = None

    def next(self):
        self._dt.append(self.strategy.datetime[0])
        self._value.append(self.strategy.broker.getvalue())
        if self._bench_data is not None:  # a feed that has not started yet has no price
            self._close.append([float(d.close[0]) if len(d) else np.nan
                                for d in self._bench_data])

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

    def _benchmark(self, index, keep):
        """Benchmark returns on ``index`` (NaN before it starts) and its name."""
        name = self.p.benchmark_name
        if self._bench_data is not None:
            names = [_data_name(d) for d in self._bench_data]
            close = pd.DataFrame(np.asarray(self._close, dtype="float64").reshape(
                len(index), len(names)), index=index, columns=names)[keep]
            if len(names) == 1:
                close = close.iloc[:, 0].ffill()
                bench = close.pct_change()
                started = close.first_valid_index()
                if started is not None:
                    bench[started] = 0.0  # bought at its first close
                return bench, name or f"{names[0]} buy & hold"
            bench = equal_weight_value(close).pct_change().fillna(0.0)
            return bench, name or f"equal-weight buy & hold of {', '.join(names)}"
        if isinstance(self.p.benchmark, pd.Series):
            bench = pd.Series(self.p.benchmark, dtype="float64")
            return bench, name or str(self.p.benchmark.name or "Benchmark")
        return None, name

    def _stamps(self):
        """The timestamps of the recorded bars and which of them to keep (the last of each
        stamp, or of each ``sample`` interval up to the first value ``<= 0``)."""
        index = num_to_index(self._dt, utc=False)
        if self.p.sample:
            raw = np.asarray(self._value, dtype="float64")
            if not np.isfinite(raw).all():  # named error, even inside an interval
                equity_returns(pd.Series(raw, index=index), self._start_value)
            dead = np.flatnonzero(raw <= 0)
            index = index.floor(self.p.sample)
            if len(dead):  # the bucket of the ruin ends with it
                cut = dead[0] + 1
                keep = ~index[:cut].duplicated(keep="last")
                return index, np.concatenate([keep, np.zeros(len(index) - cut, bool)])
        return index, ~index.duplicated(keep="last")

    def stop(self):
        index, keep = self._stamps()
        value = pd.Series(self._value, index=index, dtype="float64", name="value")[keep]
        returns, ruined_at = equity_returns(value, self._start_value)
        self.strategy_name = self.p.strategy_name or type(self.strategy).__name__
        benchmark, self.benchmark_name = self._benchmark(index, keep)
        filled, bench_start = report_benchmark(benchmark, returns.index)
        if benchmark is not None:
            benchmark = align_benchmark(benchmark, returns.index).rename(self.benchmark_name)
            filled = filled.rename(self.benchmark_name)
        returns.name = self.strategy_name
        ppy = self._periods_per_year(returns.index)
        calendar = detect_calendar(returns.index) if self.p.calendar == "auto" \
            else self.p.calendar
        metrics = compute_metrics(returns, ppy, benchmark=filled, rf=self.p.rf)
        notes = self._notes(returns, value, ppy, calendar, ruined_at, benchmark, bench_start)
        sheet = self._sheet(returns, filled, ppy, calendar, metrics)
        self.rets = dict(
            returns=returns, benchmark=benchmark, value=value, metrics=metrics,
            periods_per_year=ppy, calendar=calendar, strategy_name=self.strategy_name,
            benchmark_name=self.benchmark_name if benchmark is not None else None,
            benchmark_start=bench_start, ruined_at=ruined_at, notes=notes, tearsheet=sheet,
        )
        if self.p.output:
            if self.can_write_html(warn=True):
                self.write_html(self.p.output)
            self.write_json(self.p.metrics_output or self.default_json_path(self.p.output))

    def _notes(self, returns, value, ppy, calendar, ruined_at, benchmark, bench_start):
        """The lines the sheet and the JSON both carry."""
        notes = []
        if ruined_at is not None:
            line = (f"Account ruined: the portfolio value reached {value[ruined_at]:,.2f} at "
                    f"{ruined_at}; the returns stop there at -100 % (equity <= 0 ends the "
                    f"record; {len(value) - len(returns)} later bar(s) are not counted).")
            warnings.warn(line, RuntimeWarning, stacklevel=3)
            notes.append(line)
        if len(returns) >= 2:
            r, _, days_ppy, compounded = sheet_series(returns, None, ppy, calendar)
            if compounded:
                notes.append(frequency_note(len(returns), len(r), days_ppy, ppy))
        if benchmark is not None and bench_start is not None and len(returns) \
                and bench_start > returns.index[0]:
            notes.append(f"The benchmark starts at {bench_start}: before that it counts as "
                         "flat (0 %), on this sheet and in metrics.json alike.")
        elif benchmark is not None and bench_start is None:
            notes.append("The benchmark has no value in this period: it counts as flat (0 %).")
        return notes

    def _sheet(self, returns, benchmark, ppy, calendar, metrics) -> dict:
        """The rows of the tear sheet, their metrics and quantstats' table of them."""
        if len(returns) < 2:
            return dict(returns=returns, benchmark=benchmark, periods_per_year=ppy,
                        compounded=False, metrics=metrics)
        r, b, sheet_ppy, compounded = sheet_series(returns, benchmark, ppy, calendar)
        sheet_metrics = compute_metrics(r, sheet_ppy, benchmark=b, rf=self.p.rf) \
            if compounded else dict(metrics)
        if self.p.qs_table:
            try:
                table = quantstats_table(r, b, sheet_ppy, self.p.rf, daily=False)
                metrics["quantstats"] = table.get("strategy", {})
                if "benchmark" in table:
                    metrics["quantstats_benchmark"] = table["benchmark"]
            except Exception as exc:  # a report extra must not sink the backtest
                warnings.warn(f"quantstats metric table failed: {exc!r}", RuntimeWarning,
                              stacklevel=3)
        return dict(returns=r, benchmark=b, periods_per_year=sheet_ppy, compounded=compounded,
                    metrics=sheet_metrics)

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

    def can_write_html(self, warn: bool = False) -> bool:
        """Whether the sheet has the two rows quantstats needs (two UTC days when the bars
        are intraday); with ``warn``, a ``RuntimeWarning`` says why not."""
        sheet = self.rets["tearsheet"]
        n = len(sheet["returns"])
        if n >= 2:
            return True
        if warn:
            what = "UTC day(s) of intraday bars" if sheet["compounded"] else "bar(s) recorded"
            warnings.warn(f"no tear sheet: {n} {what}; quantstats needs two rows",
                          RuntimeWarning, stacklevel=3)
        return False

    def write_html(self, path) -> Path:
        """The quantstats tear sheet of this run (not redrawn if already written there)."""
        path = Path(path)
        if self.html_path is not None and self.html_path.resolve() == path.resolve() \
                and path.exists():
            return path
        a = self.rets
        sheet = a["tearsheet"]
        self.html_path = write_tearsheet(
            sheet["returns"], path, benchmark=sheet["benchmark"],
            periods_per_year=sheet["periods_per_year"], rf=self.p.rf, title=self.title,
            strategy_name=self.strategy_name, benchmark_name=self.benchmark_name or "Benchmark",
            daily=False, notes=a["notes"],
        )
        return self.html_path

    def summary(self) -> dict:
        """What ``metrics.json`` holds: labels, span, annualisation, notes, the bar-frequency
        ``metrics`` and the ``tearsheet`` block (its frequency and metrics)."""
        a = self.rets
        sheet = a["tearsheet"]
        idx = a["returns"].index
        return dict(
            title=self.title, strategy=self.strategy_name, benchmark=a["benchmark_name"],
            start=idx[0] if len(idx) else None, end=idx[-1] if len(idx) else None,
            periods_per_year=a["periods_per_year"], calendar=a["calendar"], rf=self.p.rf,
            benchmark_start=a["benchmark_start"], ruined_at=a["ruined_at"], notes=a["notes"],
            metrics=a["metrics"],
            tearsheet=dict(
                frequency="1 day (UTC)" if sheet["compounded"] else "bars",
                periods_per_year=sheet["periods_per_year"], n_periods=len(sheet["returns"]),
                metrics={k: v for k, v in sheet["metrics"].items() if "quantstats" not in k},
            ),
        )

    def write_json(self, path, extra: dict | None = None) -> Path:
        return write_metrics_json(path, {**self.summary(), **(extra or {})})
