"""The market maker's report: one HTML page a market maker reads, made for intraday runs.

Per feed: the headline numbers (PnL in quote currency and its parts, fills, quotes,
inventory, spreads, markouts, fills by kind, latency, limit breaches), then PnL over time,
inventory against the limit, quotes and fills on the mid (the whole run and its busiest
minute), the markout curve and fills by kind. Pictures are embedded (one file to open or
mail). Everything comes from ``MarketMakingAnalyzer`` (its ``series()``, ``fills()``,
``quote_log()`` and ``get_analysis()``).

quantstats' tear sheet reads one row per day and annualises it: a run of eleven minutes
becomes "2 days" with a Sharpe of hundreds. :func:`tearsheet_note` says when a run is too
short for it (:data:`MIN_TEARSHEET_DAYS`), and the page says so instead of linking it.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import pandas as pd

from . import mm_fills, mm_plots

__all__ = ["MIN_TEARSHEET_DAYS", "format_span", "run_span", "tearsheet_note",
           "write_mm_report"]

#: UTC days a run must span before a quantstats tear sheet (daily returns, annualised
#: ratios) says anything: fewer days give ratios from a handful of rows
MIN_TEARSHEET_DAYS = 30

_CSS = """body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;
max-width:1150px;color:#222}h1{font-size:22px}h2{font-size:18px;margin-top:28px;
border-bottom:1px solid #ddd}h3{font-size:15px;margin:18px 0 0}
table{border-collapse:collapse;font-size:13px}
td{padding:2px 14px 2px 4px;border-bottom:1px solid #eee}td.v{text-align:right;
font-variant-numeric:tabular-nums}.note{background:#fff8e1;border-left:4px solid #f0b400;
padding:8px 12px;margin:12px 0;font-size:14px}.meta{color:#555;font-size:14px}
img{max-width:100%;margin:6px 0}.cols{display:flex;gap:28px;flex-wrap:wrap}"""


def run_span(index) -> tuple:
    """``(start, end, seconds)`` of a DatetimeIndex (``(NaT, NaT, 0.0)`` when empty)."""
    if not len(index):
        return pd.NaT, pd.NaT, 0.0
    start, end = index.min(), index.max()
    return start, end, float((end - start).total_seconds())


def format_span(seconds: float) -> str:
    """``"43 s"``, ``"11 min 12 s"``, ``"5.0 hours"``, ``"366 days"``."""
    if seconds < 59.5:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {seconds % 60:.0f} s"
    if seconds < 2 * 86_400:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86_400:.0f} days"


def tearsheet_note(seconds: float, min_days: float = MIN_TEARSHEET_DAYS) -> str | None:
    """``None`` when a run of ``seconds`` spans enough days for a quantstats tear sheet,
    else the sentence that says why there is none."""
    if seconds >= min_days * 86_400:
        return None
    return (f"This run spans {format_span(seconds)}. quantstats' tear sheet reads one row per "
            f"day and annualises it (Sharpe, CAGR, volatility): it needs at least "
            f"{min_days:g} days of data, so none was written and the annualised ratios in "
            f"metrics.json are left out. The figures below are in quote currency, per event.")


def _epoch(index):
    """Epoch seconds of a DatetimeIndex, whatever its unit."""
    return index.as_unit("ns").asi8 / 1e9


def _img(fig) -> str:
    data = base64.b64encode(mm_plots.png_bytes(fig)).decode("ascii")
    return f'<img src="data:image/png;base64,{data}">'


def _table(rows) -> str:
    body = "".join(f"<tr><td>{html.escape(str(k))}</td><td class='v'>{html.escape(str(v))}"
                   f"</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _feed_section(analyzer, data, name: str, analysis: dict, currency: str) -> list[str]:
    series = analyzer.series(data)
    fills = analyzer.fills(data)
    quotes = analyzer.quote_log(data)
    limit_of = getattr(analyzer.strategy, "inventory_limit", None)
    limit = limit_of(data) if limit_of is not None else None
    start, end, seconds = run_span(series.index)
    out = [f"<h2>{html.escape(name)}</h2>",
           f"<p class='meta'>{start:%Y-%m-%d %H:%M:%S} to {end:%Y-%m-%d %H:%M:%S} UTC "
           f"({format_span(seconds)}, {len(series):,} events, {len(fills):,} executions, "
           f"{len(quotes):,} quotes in the book)</p>" if len(series) else "<p>no events</p>"]
    rows = mm_plots.table_rows(analysis, name)
    half = (len(rows) + 1) // 2
    out.append(f"<div class='cols'>{_table(rows[:half])}{_table(rows[half:])}</div>")
    if not len(series):
        return out
    out += ["<h3>PnL over time</h3>", _img(mm_plots.figure_pnl(series, currency)),
            "<h3>Inventory</h3>", _img(mm_plots.figure_inventory(series, limit)),
            "<h3>Quotes and fills on the mid</h3>",
            _img(mm_plots.figure_quotes(series, fills, quotes))]
    length = max(seconds / 15.0, 20.0)  # a fifteenth of the run: 43 s of 11 minutes
    window = mm_plots.busiest_window(fills, length)
    if window is not None and seconds > 120.0:
        lo, _ = window
        when = f"{lo:%H:%M:%S}" if seconds < 86_400 else f"{lo:%Y-%m-%d %H:%M}"
        out.append(_img(mm_plots.figure_quotes(
            series, fills, quotes, window,
            title=f"Zoom: the {format_span(length)} with the most fills, from {when} UTC")))
    if len(fills):
        curve = mm_fills.markouts(_epoch(fills.index), fills["side"], fills["price"],
                                  fills["size"], _epoch(series.index), series["mid"],
                                  mm_plots.MARKOUT_CURVE, tol=1e-4)
        out += ["<h3>Markouts</h3>", _img(mm_plots.figure_markouts(curve))]
    kinds = analysis[name].get("fills_by_kind")
    if kinds:
        out += ["<h3>Fills by kind</h3>",
                _img(mm_plots.figure_fill_kinds(kinds, analysis[name].get("volume_by_kind")))]
    return out


def write_mm_report(analyzer, path, title: str = "Market making", details: str = "",
                    notes: list[str] | None = None, links: dict | None = None,
                    currency: str = "quote currency") -> Path:
    """Write the report of a finished run's ``MarketMakingAnalyzer`` to ``path`` (HTML).

    ``details``: a line under the title (data, fill model, latency); ``notes``: highlighted
    sentences (e.g. :func:`tearsheet_note`); ``links``: ``{label: relative path}`` of the
    run's other files; ``currency``: the PnL's unit (``"USDT"``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    analysis = analyzer.get_analysis()
    feeds = [(data, data._name or f"data{i}") for i, data in enumerate(analyzer.datas)]
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if details:
        parts.append(f"<p class='meta'>{html.escape(details)}</p>")
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in notes or []]
    if links:
        parts.append("<p class='meta'>Files: " + ", ".join(
            f"<a href='{html.escape(str(v))}'>{html.escape(k)}</a>" for k, v in links.items())
            + "</p>")
    if len(feeds) > 1:
        total = analysis["total"]
        parts += ["<h2>All feeds</h2>", _table([
            ("total PnL", f"{total['total_pnl']:,.2f}"),
            ("fills bid / ask / taker",
             f"{total['fills_bid']} / {total['fills_ask']} / {total['fills_taker']}"),
            ("fees", f"{total['fees']:,.2f}")])]
    for data, name in feeds:
        parts += _feed_section(analyzer, data, name, analysis, currency)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{_CSS}</style></head><body>{''.join(parts)}</body></html>")
    path.write_text(page, encoding="utf-8")
    return path


def is_short_run(seconds: float, min_days: float = MIN_TEARSHEET_DAYS) -> bool:
    """Whether a run of ``seconds`` is too short for the tear sheet."""
    return not (math.isfinite(seconds) and seconds >= min_days * 86_400)
