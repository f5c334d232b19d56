"""Pictures and the plain-text table of a market-making run. No backtrader: DataFrames in
(``MarketMakingAnalyzer.series()``, ``fills()``, ``quote_log()``), PNGs out, drawn on bare
``matplotlib.figure.Figure`` objects (no pyplot, no display, whatever backend is set).

Times are UTC; each time axis is labelled with the clock time it needs (seconds for a run of
minutes, dates for one of months), never with dates when the run is shorter than a day.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd

from . import mm_fills

__all__ = ["MARKOUT_CURVE", "busiest_window", "figure_fill_kinds", "figure_inventory",
           "figure_markouts", "figure_pnl", "figure_quotes", "format_table", "plot_inventory",
           "png_bytes"]

#: seconds after a fill at which the report's markout curve reads the mid
MARKOUT_CURVE = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
_BUY, _SELL, _MID = "#2ca02c", "#d62728", "0.25"


# ---------------------------------------------------------------------- the table
_ROWS = [
    ("total_pnl", "total PnL", "{:,.2f}"),
    ("spread_pnl", "  spread capture", "{:,.2f}"),
    ("inventory_pnl", "  inventory PnL", "{:,.2f}"),
    ("fees", "  fees (− = rebate)", "{:,.2f}"),
    ("broker_pnl", "broker value change", "{:,.2f}"),
    ("fills_bid", "fills bid / ask / taker", None),
    ("quotes_bid", "quotes placed bid / ask", None),
    ("fill_ratio", "fill ratio", "{:.2%}"),
    ("mean_abs_inventory", "mean |inventory|", "{:.4g}"),
    ("max_abs_inventory", "max |inventory|", "{:.4g}"),
    ("time_weighted_inventory", "time-weighted inventory", "{:.4g}"),
    ("quoted_spread_bps", "quoted spread (bps)", "{:.2f}"),
    ("effective_spread_bps", "effective spread (bps)", "{:.2f}"),
    ("realised_spread_bps", "realised spread (bps)", "{:.2f}"),
    ("final_inventory", "final inventory", "{:.4g}"),
]


def table_rows(analysis: dict, name: str | None = None) -> list[tuple[str, str]]:
    """``(label, value)`` rows of a ``MarketMakingAnalyzer`` result (one feed, default the
    first): the text table's and the HTML report's."""
    feeds = [k for k in analysis if k != "total"]
    name = name or (feeds[0] if feeds else "total")
    s = dict(analysis[name])
    tot = analysis.get("total", {})
    s.setdefault("broker_pnl", tot.get("broker_pnl", float("nan")))
    if name != "total" and len(feeds) > 1:
        s["broker_pnl"] = float("nan")
    rows = []
    for key, label, fmt in _ROWS:
        if key == "fills_bid":
            val = f"{s['fills_bid']} / {s['fills_ask']} / {s['fills_taker']}"
        elif key == "quotes_bid":
            val = f"{s['quotes_bid']} / {s['quotes_ask']}"
        else:
            v = s.get(key, float("nan"))
            val = "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)
        rows.append((label, val))
    rows += mm_fills.table_rows(s)
    closes = s.get("close_inventory") or []
    if closes:
        rows.append(("inventory at session close", f"{closes[-1][1]:.4g}"))
    return rows


def format_table(analysis: dict, name: str | None = None) -> str:
    """A plain-text table of a ``MarketMakingAnalyzer`` result (one feed, default the first)."""
    feeds = [k for k in analysis if k != "total"]
    name = name or (feeds[0] if feeds else "total")
    lines = [f"{'metric':<28}{name:>22}", "-" * 50]
    lines += [f"{label:<28}{val:>22}" for label, val in table_rows(analysis, name)]
    return "\n".join(lines)


# ---------------------------------------------------------------------- helpers
def _figure(height: float, rows: int = 1, ratios=None):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, height), dpi=100)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": ratios} if ratios else None)[:, 0]
    return fig, axes


def _time_axis(ax, start: pd.Timestamp, end: pd.Timestamp) -> None:
    """Clock labels fit for the span: ``HH:MM:SS`` under a day, dates beyond."""
    import matplotlib.dates as mdates

    span = (end - start).total_seconds() if pd.notna(start) and pd.notna(end) else 0.0
    fmt = "%H:%M:%S" if span < 3600 else "%m-%d %H:%M" if span < 3 * 86_400 else "%Y-%m-%d"
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=4, maxticks=9))
    ax.xaxis.set_major_formatter(mdates.DateFormatter(fmt, tz="UTC"))
    ax.set_xlabel("UTC" if span < 3 * 86_400 else "date (UTC)")


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes (tight layout)."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _naive(index) -> pd.DatetimeIndex:
    """matplotlib draws tz-aware times as UTC already; naive keeps it from converting."""
    idx = pd.DatetimeIndex(index)
    return idx.tz_convert("UTC").tz_localize(None) if idx.tz is not None else idx


# ---------------------------------------------------------------------- figures
def figure_pnl(series: pd.DataFrame, currency: str = "quote currency"):
    """Total PnL and its parts (spread capture, inventory PnL, −fees) over time."""
    fig, (ax,) = _figure(3.6)
    x = _naive(series.index)
    ax.plot(x, series["pnl"], color="black", lw=1.4, label="total PnL")
    ax.plot(x, series["spread_pnl"], color="#1f77b4", lw=0.9, label="spread capture")
    ax.plot(x, series["inventory_pnl"], color="#9467bd", lw=0.9, label="inventory PnL")
    ax.plot(x, -series["fees"], color="#ff7f0e", lw=0.9, label="− fees")
    ax.axhline(0.0, color="0.6", lw=0.6)
    ax.set_ylabel(f"PnL ({currency})")
    ax.legend(loc="best", fontsize=8, ncol=2, framealpha=0.8)
    ax.grid(alpha=0.3)
    _time_axis(ax, series.index.min(), series.index.max())
    ax.set_title("PnL over time")
    return fig


def figure_inventory(series: pd.DataFrame, limit: float | None = None):
    """Inventory (contracts) after each event, with the hard limit."""
    fig, (ax,) = _figure(2.8)
    x = _naive(series.index)
    ax.step(x, series["position"], where="post", lw=0.9, color="#1f77b4")
    ax.axhline(0.0, color="0.5", lw=0.6)
    if limit is not None and math.isfinite(limit):
        for y in (limit, -limit):
            ax.axhline(y, color=_SELL, lw=0.8, ls="--")
        ax.text(x[0], limit, " limit", color=_SELL, va="bottom", fontsize=8)
    ax.set_ylabel("inventory (contracts)")
    ax.grid(alpha=0.3)
    _time_axis(ax, series.index.min(), series.index.max())
    ax.set_title("Inventory")
    return fig


def busiest_window(fills: pd.DataFrame, seconds: float) -> tuple | None:
    """``(start, end)`` of the ``seconds`` window holding the most fills (``None``: none)."""
    if not len(fills):
        return None
    t = fills.index.as_unit("ns").asi8 / 1e9
    counts = np.searchsorted(t, t + seconds, side="right") - np.arange(len(t))
    i = int(np.argmax(counts))
    start = fills.index[i]
    return start - pd.Timedelta(seconds=0.1 * seconds), start + pd.Timedelta(seconds=seconds)


def _quote_segments(ax, quotes: pd.DataFrame, end: pd.Timestamp, lo, hi) -> None:
    from matplotlib.collections import LineCollection

    if not len(quotes):
        return
    q = quotes[(quotes["start"] <= hi) & (quotes["end"].fillna(end) >= lo)]
    for sign, color, label in ((1.0, _BUY, "bid quotes"), (-1.0, _SELL, "ask quotes")):
        side = q[q["side"] == sign]
        if not len(side):
            continue
        x0 = _naive(side["start"].clip(lower=lo))
        x1 = _naive(side["end"].fillna(end).clip(upper=hi))
        import matplotlib.dates as mdates

        segs = np.stack([np.c_[mdates.date2num(x0), side["price"]],
                         np.c_[mdates.date2num(x1), side["price"]]], axis=1)
        ax.add_collection(LineCollection(segs, colors=color, lw=1.6, alpha=0.55,
                                         label=label))


def figure_quotes(series: pd.DataFrame, fills: pd.DataFrame, quotes: pd.DataFrame,
                  window: tuple | None = None, title: str = "Quotes and fills on the mid"):
    """The mid with each quote's time in the book (a segment at its price) and the fills
    (▲ buys, ▼ sells; hollow for taker fills), over ``window`` (default: the whole run)."""
    lo, hi = window if window is not None else (series.index.min(), series.index.max())
    s = series[(series.index >= lo) & (series.index <= hi)]
    f = fills[(fills.index >= lo) & (fills.index <= hi)]
    fig, (ax,) = _figure(4.2)
    ax.step(_naive(s.index), s["mid"], where="post", color=_MID, lw=0.8, label="mid")
    _quote_segments(ax, quotes, series.index.max(), lo, hi)
    for sign, marker, color, label in ((1, "^", _BUY, "buy fills"), (-1, "v", _SELL,
                                                                      "sell fills")):
        side = f[f["side"] == sign]
        size = 26 if len(f) < 400 else 8
        maker, taker = side[~side["taker"].astype(bool)], side[side["taker"].astype(bool)]
        ax.scatter(_naive(maker.index), maker["price"], s=size, marker=marker, color=color,
                   label=label, zorder=3)
        if len(taker):
            ax.scatter(_naive(taker.index), taker["price"], s=size, marker=marker,
                       facecolors="none", edgecolors=color, zorder=3,
                       label=f"{label} (taker)")
    ax.set_ylabel("price")
    ax.legend(loc="best", fontsize=8, ncol=3, frameon=False)
    ax.grid(alpha=0.3)
    _time_axis(ax, lo, hi)
    ax.set_title(title)
    return fig


def figure_markouts(curve: dict):
    """Mean markout (bps) against the time after the fill, buys and sells (``curve``:
    :func:`analyzers.mm_fills.markouts` output, ``{h: {side: {...}}}``)."""
    fig, (ax,) = _figure(3.2)
    hs = sorted(curve)
    for side, color, label in (("bid", _BUY, "buys (bid fills)"), ("ask", _SELL,
                                                                    "sells (ask fills)"),
                               ("all", "black", "all fills")):
        ys = [curve[h][side]["bps"] for h in hs]
        ok = [y is not None for y in ys]
        if any(ok):
            ax.plot([h for h, k in zip(hs, ok) if k], [y for y, k in zip(ys, ok) if k],
                    marker="o", color=color, lw=1.2 if side == "all" else 0.9, label=label)
    ax.axhline(0.0, color="0.5", lw=0.6)
    ax.set_xscale("log")
    ax.set_xticks(hs)
    ax.set_xticklabels([f"{h:g}" for h in hs])
    ax.set_xlabel("seconds after the fill")
    ax.set_ylabel("markout (bps)")
    ax.legend(loc="best", fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    ax.set_title("Markouts: sign·(mid later − fill price), size-weighted")
    return fig


def figure_fill_kinds(kinds: dict, volume: dict | None = None):
    """Executions by how they happened (``fills_by_kind``), with their volume."""
    fig, (ax,) = _figure(2.6)
    names = [k for k, n in kinds.items() if n] or list(kinds)
    counts = [kinds[k] for k in names]
    ax.barh(names, counts, color="#1f77b4")
    for y, (k, n) in enumerate(zip(names, counts)):
        vol = f", {volume[k]:.4g} contracts" if volume and k in volume else ""
        ax.text(n, y, f" {n}{vol}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("executions")
    ax.set_title("Fills by kind")
    ax.margins(x=0.25)
    return fig


def plot_inventory(analyzer, path, data=None, title: str = ""):
    """Save a two-panel PNG: mid with buy/sell fills, and inventory over time."""
    s = analyzer.series(data)
    f = analyzer.fills(data)
    fig, (ax1, ax2) = _figure(6, 2, [2, 1])
    ax1.plot(_naive(s.index), s["mid"], lw=0.8, color="0.3", label="mid")
    if len(f):
        buys, sells = f[f["side"] > 0], f[f["side"] < 0]
        size = 8 if len(f) < 500 else 1.5
        ax1.scatter(_naive(buys.index), buys["price"], s=size, color=_BUY, label="buy fills")
        ax1.scatter(_naive(sells.index), sells["price"], s=size, color=_SELL,
                    label="sell fills")
    ax1.set_ylabel("price")
    ax1.legend(loc="best", fontsize=8)
    ax1.set_title(title or "market making: fills and inventory")
    ax2.step(_naive(s.index), s["position"], where="post", lw=0.9, color="tab:blue")
    ax2.axhline(0.0, color="0.5", lw=0.6)
    ax2.set_ylabel("inventory (contracts)")
    if len(s):
        _time_axis(ax2, s.index.min(), s.index.max())
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
