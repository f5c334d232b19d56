"""The files a market-making run writes (``run_market_making(out=...)``): the common report
(``analyzers.write_report``: ``metrics.json``, ``equity_drawdown.png``, and the quantstats
``tearsheet.html`` only when the run spans enough days), the market maker's own report
``mm_report.html`` (``analyzers.mm_report``), ``mm_metrics.json`` and the inventory PNGs.
"""

from __future__ import annotations

import json
from pathlib import Path

import analyzers

__all__ = ["write_files"]


def write_files(strat, outdir: Path, result: dict, plot: bool) -> None:
    """The report, ``mm_metrics.json``, ``mm_report.html`` and the inventory plots, listed in
    ``result["files"]``."""
    from analyzers.market_making import plot_inventory

    outdir.mkdir(parents=True, exist_ok=True)
    result["report"] = _write_report(strat, outdir, result)
    result["files"].extend(str(p) for p in result["report"]["files"].values())
    path = outdir / "mm_metrics.json"
    path.write_text(json.dumps(_mm_summary(result), indent=2, default=str))
    result["files"].append(str(path))
    if not plot:
        return
    names = result["feeds"]
    for name, data in zip(names, strat.datas):
        stem = "mm_inventory" if len(names) == 1 else f"mm_inventory_{_file_safe(name)}"
        png = plot_inventory(strat.analyzers.mm, outdir / f"{stem}.png", data=data,
                             title=f"{names[name]} ({result['source']}, "
                                   f"{result['fill_model']} fills)")
        result["files"].append(str(png))


def _span_seconds(strat) -> float:
    from analyzers.mm_report import run_span

    return max((run_span(strat.analyzers.mm.series(d).index)[2] for d in strat.datas),
               default=0.0)


def _write_mm_report(strat, outdir: Path, result: dict, note: str | None, links: dict):
    from analyzers.mm_report import write_mm_report

    broker = result["broker"]
    details = (f"{result['dataset']} ({result['source']}); fill model {result['fill_model']}, "
               f"queue {broker['queue']}, latency {broker['latency']}; requote "
               f"{strat.p.requote}; PnL in quote currency")
    return write_mm_report(strat.analyzers.mm, outdir / "mm_report.html",
                           title=f"Market making on {result['dataset']}", details=details,
                           notes=[note] if note else None, links=links,
                           currency="quote currency (USDT)")


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _mm_summary(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("files", "table", "report")}


#: quantstats metrics that annualise (or need many periods): left out of a short run's report
_ANNUALISED = ("cagr", "volatility", "sharpe", "sortino", "calmar", "alpha", "beta",
               "information_ratio", "tracking_error")


def _drop_annualised(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items()
            if k.removeprefix("benchmark_") not in _ANNUALISED and not k.startswith("quantstats")}


def _write_report(strat, outdir: Path, result: dict) -> dict:
    """``analyzers.write_report`` (metrics.json, equity PNG; the quantstats tear sheet only
    when the run spans enough days, else a note and no annualised ratios), the
    market-making report ``mm_report.html``, then this run's market-making numbers added to
    ``metrics.json``."""
    from analyzers.mm_report import tearsheet_note

    note = tearsheet_note(_span_seconds(strat))
    report = analyzers.write_report(strat, outdir, tearsheet=note is None)
    path = report["files"]["metrics"]
    full = json.loads(path.read_text())
    if note is not None:
        report["metrics"] = _drop_annualised(report["metrics"])
        full["metrics"] = _drop_annualised(full.get("metrics", {}))
        full.pop("tearsheet", None)
        full["notes"] = [note]
    links = {label: f.name for label, f in report["files"].items()}
    report["files"]["mm_report"] = _write_mm_report(strat, outdir, result, note, links)
    full.update(analyzers.json_safe({"cash": result["cash"], "final_value": result["final_value"],
                                     "market_making": _mm_summary(result)}))
    path.write_text(json.dumps(full, indent=2, allow_nan=False))
    return report
