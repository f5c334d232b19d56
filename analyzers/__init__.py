"""backtrader analyzers: quantstats metrics and tear sheets, trade statistics, pictures.

One line adds everything to a Cerebro, one call writes the report of a finished run::

    import analyzers
    analyzers.add_all(cerebro, output="runs/x/tearsheet.html", benchmark="buyhold")
    strat = cerebro.run()[0]
    analyzers.write_report(strat, "runs/x")   # tearsheet.html, metrics.json, equity_drawdown.png

The metric formulas are plain functions in ``analyzers.metrics`` (``compute_metrics``,
``infer_periods_per_year``, ``bootstrap_sharpe_ci``) usable without backtrader; the policies
for ruin, NaN, a late benchmark and intraday returns on the (daily) tear sheet are in
``analyzers.returns``. ``RegimeAnalyzer`` splits the returns by the regime a strategy's
``RegimeIndicator`` reads (``analyzers.regimes``). ``DriftMonitor`` watches a model's
features, predictions and realised skill against its training statistics
(``reference_from_predictor``) and warns on drift.
"""

from __future__ import annotations

from pathlib import Path

from .drift import DriftMonitor, make_reference, reference_from_predictor
from .market_making import MarketMakingAnalyzer, plot_inventory
from .market_making import format_table as format_mm_table
from .metrics import (
    align_benchmark,
    bootstrap_sharpe_ci,
    compute_metrics,
    detect_calendar,
    infer_periods_per_year,
    json_safe,
)
from .plots import drawdown_series, plot_equity_drawdown, save_cerebro_plot
from .quantstats_analyzer import (
    QuantStatsAnalyzer,
    quantstats_table,
    quiet_fonts,
    write_metrics_json,
    write_tearsheet,
)
from .regimes import RegimeAnalyzer, plot_price_by_regime, regime_metrics
from .returns import check_returns, equity_returns, is_intraday, to_daily
from .trades import TradeStats, summarize_trades
from .weights import PositionWeights, plot_weights

__all__ = [
    "DriftMonitor",
    "MarketMakingAnalyzer",
    "PositionWeights",
    "QuantStatsAnalyzer",
    "RegimeAnalyzer",
    "TradeStats",
    "add_all",
    "align_benchmark",
    "bootstrap_sharpe_ci",
    "check_returns",
    "compute_metrics",
    "detect_calendar",
    "drawdown_series",
    "equity_returns",
    "find_analyzer",
    "format_mm_table",
    "infer_periods_per_year",
    "is_intraday",
    "json_safe",
    "make_reference",
    "plot_equity_drawdown",
    "plot_inventory",
    "plot_price_by_regime",
    "plot_weights",
    "quantstats_table",
    "quiet_fonts",
    "reference_from_predictor",
    "regime_metrics",
    "save_cerebro_plot",
    "summarize_trades",
    "to_daily",
    "write_metrics_json",
    "write_report",
    "write_tearsheet",
]


def add_all(cerebro, output=None, benchmark="buyhold", **quantstats_params):
    """Add ``QuantStatsAnalyzer`` (as ``quantstats``) and ``TradeStats`` (as ``tradestats``).

    ``output``: tear-sheet path written when the run stops (metrics JSON beside it);
    other keyword arguments are ``QuantStatsAnalyzer`` params (``periods_per_year``,
    ``calendar``, ``rf``, ``title``, ...). Returns ``cerebro``.
    """
    cerebro.addanalyzer(
        QuantStatsAnalyzer, _name="quantstats", output=output, benchmark=benchmark,
        **quantstats_params,
    )
    cerebro.addanalyzer(TradeStats, _name="tradestats")
    return cerebro


def find_analyzer(strategy, kind):
    """The first analyzer of class ``kind`` attached to ``strategy`` (None if absent)."""
    for analyzer in strategy.analyzers:
        if isinstance(analyzer, kind):
            return analyzer
    return None


def write_report(strategy, outdir, cerebro=None, tearsheet: bool = True) -> dict:
    """Write the report of a finished strategy into ``outdir``.

    Files: ``tearsheet.html`` (quantstats, from UTC days when the bars are intraday; reused
    when the analyzer already wrote it there; skipped with a ``RuntimeWarning`` when there are
    not two rows for it),
    ``metrics.json`` (labels, span, annualisation, metrics, and ``trades`` when ``TradeStats``
    is attached), ``equity_drawdown.png`` and, given ``cerebro``, ``cerebro.png``
    (backtrader's own chart). With a ``PositionWeights`` analyzer: ``weights.png`` (what
    each data held over time) and ``weights.csv``. With a ``RegimeAnalyzer``:
    ``regimes.png`` (the price coloured by regime), the returns by regime on the tear
    sheet and under ``regimes`` in ``metrics.json``. Needs ``QuantStatsAnalyzer`` on the strategy
    (``add_all(cerebro)`` before ``cerebro.run()``).

    Returns ``{"metrics": {...}, "trades": {...} or None, "files": {name: Path}}``.
    """
    qs_an = find_analyzer(strategy, QuantStatsAnalyzer)
    if qs_an is None:
        raise ValueError(
            "write_report needs a QuantStatsAnalyzer on the strategy: call "
            "analyzers.add_all(cerebro) (or cerebro.addanalyzer(QuantStatsAnalyzer)) before run()"
        )
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    res = qs_an.get_analysis()
    files = {}
    trade_an = find_analyzer(strategy, TradeStats)
    trades = trade_an.get_analysis() if trade_an is not None else None
    regime_an = find_analyzer(strategy, RegimeAnalyzer)
    regimes = regime_an.get_analysis() if regime_an is not None else None
    extra = {**({"trades": trades} if trades is not None else {}),
             **({"regimes": regimes["metrics"]} if regimes is not None else {})}
    files["metrics"] = qs_an.write_json(outdir / "metrics.json", extra=extra or None)
    if tearsheet and qs_an.can_write_html(warn=True):
        files["tearsheet"] = qs_an.write_html(outdir / "tearsheet.html")
    if regimes is not None:
        from .regimes import html_table, insert_into_tearsheet

        files["regimes"] = plot_price_by_regime(regimes["close"], regimes["regimes"],
                                                outdir / "regimes.png",
                                                title=f"{qs_an.title}: price by regime")
        if "tearsheet" in files:
            insert_into_tearsheet(files["tearsheet"], html_table(regimes["table"]))
    files["equity_drawdown"] = plot_equity_drawdown(
        res["returns"], outdir / "equity_drawdown.png", benchmark=res["benchmark"],
        title=qs_an.title,
    )
    weights_an = find_analyzer(strategy, PositionWeights)
    if weights_an is not None:
        held = weights_an.get_analysis()["weights"]
        held.rename_axis("datetime").to_csv(outdir / "weights.csv")
        files["weights_csv"] = outdir / "weights.csv"
        files["weights"] = plot_weights(held, outdir / "weights.png",
                                        title=f"{qs_an.strategy_name}: weights held")
    if cerebro is not None:
        written = save_cerebro_plot(cerebro, outdir / "cerebro.png")
        if written:
            files["cerebro"] = written[0]
    return {"metrics": res["metrics"], "trades": trades, "files": files}
