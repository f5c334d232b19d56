"""Regime-conditional metrics, a price chart coloured by regime, and the analyzer that
records both from a strategy whose indicator has a ``regime`` line.

    cerebro.addanalyzer(RegimeAnalyzer, _name="regimes")     # finds the regime line itself
    strat = cerebro.run()[0]
    strat.analyzers.regimes.get_analysis()["table"]           # one row per regime
    analyzers.write_report(strat, "runs/x")                  # + regimes.png, a table on the
                                                             #   tear sheet, metrics.json

A bar's return is counted in the regime labelled at the bar before it (the label known when
the position it earns on was held), so a row says what a rule that reads the label could
have had. Plain functions here (``regime_metrics``, ``plot_price_by_regime``) need no
backtrader; nothing here imports the model package.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd

from feeds.bartime import num_to_index

from .metrics import infer_periods_per_year

COLUMNS = ("bars", "share", "total_return", "ann_return", "ann_vol", "sharpe", "hit_rate")
_LABELS = {"bars": "bars", "share": "share of bars", "total_return": "return (compounded)",
           "ann_return": "annual return (mean)", "ann_vol": "annual volatility",
           "sharpe": "Sharpe", "hit_rate": "hit rate"}
COLORS = ("#2a9d8f", "#e9c46a", "#e76f51", "#264653", "#8ab17d", "#b5179e")


def regime_metrics(returns: pd.Series, regimes: pd.Series, periods_per_year: float,
                   lag: int = 1) -> pd.DataFrame:
    """Per-regime metrics of per-bar ``returns``; ``regimes`` a label per bar (NaN: none),
    on the same index. Bar t's return counts in the regime labelled ``lag`` bars before
    (1: the label known when the position was held). Rows: the regimes present; columns:
    ``bars``, ``share`` (of labelled bars), ``total_return`` (compounded), ``ann_return``
    (mean × periods), ``ann_vol`` (sd × sqrt(periods)), ``sharpe`` (their ratio; NaN without
    spread), ``hit_rate`` (share of the bars with a non-zero return that gained)."""
    r = pd.Series(returns, dtype="float64")
    lab = pd.Series(regimes, dtype="float64").reindex(r.index).shift(lag)
    ok = lab.notna() & r.notna()
    r, lab = r[ok], lab[ok].astype(int)
    rows = {}
    for k in sorted(lab.unique()):
        x = r[lab == k]
        sd = x.std(ddof=1) if len(x) > 1 else math.nan
        moved = x[x != 0]
        rows[int(k)] = {
            "bars": int(len(x)), "share": len(x) / len(r),
            "total_return": float(np.prod(1 + x.to_numpy()) - 1),
            "ann_return": float(x.mean() * periods_per_year),
            "ann_vol": float(sd * math.sqrt(periods_per_year)),
            "sharpe": float(x.mean() / sd * math.sqrt(periods_per_year)) if sd > 0 else math.nan,
            "hit_rate": float((moved > 0).mean()) if len(moved) else math.nan,
        }
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(COLUMNS)).rename_axis(
        "regime")


def format_table(table: pd.DataFrame) -> str:
    """The metrics as a markdown table."""
    head = "| regime | " + " | ".join(_LABELS[c] for c in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    for k, row in table.iterrows():
        lines.append(f"| {k} | " + " | ".join(_fmt(c, row[c]) for c in COLUMNS) + " |")
    return "\n".join(lines)


def _fmt(col: str, v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if col == "bars":
        return f"{int(v):,}"
    if col == "sharpe":
        return f"{v:+.2f}"
    return f"{v:+.1%}" if col in ("total_return", "ann_return") else f"{v:.1%}"


def html_table(table: pd.DataFrame, title: str = "Returns by regime") -> str:
    """The metrics as an HTML block for the tear sheet."""
    head = "".join(f"<th>{html.escape(_LABELS[c])}</th>" for c in COLUMNS)
    body = "".join("<tr><td>" + str(k) + "</td>" + "".join(
        f"<td>{html.escape(_fmt(c, row[c]))}</td>" for c in COLUMNS) + "</tr>"
        for k, row in table.iterrows())
    return (f'<div class="s4-regimes" style="margin:8px 0"><h4>{html.escape(title)}</h4>'
            f'<table style="font-size:12px"><tr><th>regime</th>{head}</tr>{body}</table>'
            "<p style=\"color:#555;font-size:11px\">A bar's return counts in the regime "
            "labelled at the bar before it.</p></div>")


def insert_into_tearsheet(path, block: str) -> Path:
    """Put ``block`` under the tear sheet's heading and notes (once: a second call replaces
    the first block)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    start = text.find('<div class="s4-regimes"')
    if start >= 0:
        text = text[:start] + text[text.index("</div>", start) + len("</div>"):]
    notes = text.rfind('<p class="s4-note"')
    anchor = text.find("</p>", notes) + len("</p>") if notes >= 0 else text.find("</h4>") + 5
    if anchor < 5:
        anchor = text.find("<body>") + len("<body>")
    path.write_text(text[:anchor] + block + text[anchor:], encoding="utf-8")
    return path


def plot_price_by_regime(close: pd.Series, regimes: pd.Series, path,
                         title: str = "Price by regime", log: bool = True) -> Path:
    """The close coloured by each bar's regime (grey where unlabelled), written to ``path``."""
    from matplotlib.collections import LineCollection

    from .tearsheet import agg_backend

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    c = pd.Series(close, dtype="float64")
    lab = pd.Series(regimes, dtype="float64").reindex(c.index)
    with agg_backend():
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(12, 5))
        x = mdates.date2num(c.index.tz_localize(None) if c.index.tz is not None else c.index)
        pts = np.column_stack([x, c.to_numpy()])
        segs = np.stack([pts[:-1], pts[1:]], 1)  # segment i: bar i -> i+1, bar i+1's regime
        lab_next = lab.to_numpy()[1:]
        colors = [COLORS[int(k) % len(COLORS)] if np.isfinite(k) else "#bbbbbb"
                  for k in lab_next]
        ax.add_collection(LineCollection(segs, colors=colors, linewidths=1.0))
        ax.set_xlim(x.min(), x.max())
        ax.set_ylim(np.nanmin(c) * 0.97, np.nanmax(c) * 1.03)
        if log:
            ax.set_yscale("log")
        ax.xaxis_date()
        present = sorted(int(k) for k in np.unique(lab_next[np.isfinite(lab_next)]))
        for k in present:
            share = float(np.mean(lab_next[np.isfinite(lab_next)] == k))
            ax.plot([], [], color=COLORS[k % len(COLORS)], label=f"regime {k} ({share:.0%})")
        if present:
            ax.legend(loc="upper left")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    return path


def _regime_line(strategy):
    """The ``regime`` line of the first indicator of ``strategy`` that has one."""
    for ind in strategy.getindicators():
        if "regime" in ind.lines.getlinealiases():
            return ind.lines.regime
    return None


class RegimeAnalyzer(bt.Analyzer):
    """Each bar's regime, close and portfolio value; at the end the regime-conditional
    metrics of the strategy's returns and of buy-and-hold.

    Params: ``line``: the regime line to read (default: that of the first indicator of the
    strategy with a ``regime`` line, e.g. ``RegimeIndicator``); ``data``: the price for
    buy-and-hold and the picture (default data0); ``periods_per_year``: None = inferred.

    ``get_analysis()``: ``regimes``, ``close``, ``returns`` (Series on the bars), ``table``
    and ``buyhold_table`` (DataFrames, see :func:`regime_metrics`), ``metrics`` (the table as
    a dict, for metrics.json), ``periods_per_year``."""

    params = dict(line=None, data=None, periods_per_year=None)

    def start(self):
        self._line = self.p.line if self.p.line is not None else _regime_line(self.strategy)
        if self._line is None:
            raise ValueError("RegimeAnalyzer: the strategy has no indicator with a 'regime' "
                             "line (add a RegimeIndicator, or pass line=)")
        self._data = self.p.data if self.p.data is not None else self.strategy.datas[0]
        self._dt, self._reg, self._close, self._value = [], [], [], []

    def next(self):
        self._dt.append(self.strategy.datetime[0])
        self._reg.append(float(self._line[0]))
        self._close.append(float(self._data.close[0]))
        self._value.append(float(self.strategy.broker.getvalue()))

    def stop(self):
        index = num_to_index(self._dt, utc=False)
        keep = ~index.duplicated(keep="last")
        index = index[keep]
        s = lambda v: pd.Series(np.asarray(v, dtype="float64")[keep], index=index)  # noqa: E731
        regimes, close, value = s(self._reg), s(self._close), s(self._value)
        ppy = self.p.periods_per_year or (infer_periods_per_year(index) if len(index) > 1
                                          else 252)
        returns = value.pct_change()
        table = regime_metrics(returns, regimes, ppy)
        self.rets = dict(regimes=regimes, close=close, returns=returns, table=table,
                         buyhold_table=regime_metrics(close.pct_change(), regimes, ppy),
                         metrics={int(k): row.to_dict() for k, row in table.iterrows()},
                         periods_per_year=ppy)

    def get_analysis(self):
        return self.rets
