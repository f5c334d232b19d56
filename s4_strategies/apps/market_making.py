"""One call that runs the market maker on the embedded data: ``run_market_making``.

Used by ``scripts/run_market_making.py`` and ``s4trade backtest --strategy market-making``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import backtrader as bt

import analyzers

from ..fees import BYBIT_MAKER, BYBIT_TAKER

__all__ = ["PRESETS", "run_market_making"]

# Strategy presets per source, in the units of s4_strategies.market_making (seconds, price,
# lots). gamma follows the rule of thumb gamma ≈ 1/(kappa·sigma²·tau): one lot of inventory
# moves the reservation price by about one base half-spread 1/kappa.
PRESETS = {
    "ticks": dict(
        dataset="binance:BTCUSDT",        # spot, 2024-08-08 23:54 .. 08-09 00:05 UTC
        strategy=dict(
            gamma=3e-3,                   # sigma ≈ 3.6 $/√s, kappa ≈ 0.42 /$, tau = 60 s
            horizon=60.0,
            session_close="00:00",        # a daily close inside the sample, to show it
            close_window=60.0,
            flatten_at_close=True,
            flatten_before=5.0,
            tick=0.01,
            lot=0.01,
            size_step=0.0001,
            max_inventory=5.0,
            trend_fast=10.0,
            trend_slow=60.0,
            sigma_window=120.0,
            calib_window=300.0,
            recalibrate=10.0,
        ),
    ),
    "bars": dict(
        dataset="bybit:BTCUSDT:60",       # hourly USDT perpetual
        fromdate="2024-01-01",
        todate="2024-12-31",
        strategy=dict(
            gamma=5e-4,                   # sigma ≈ 6.4 $/√s, kappa ≈ 0.0053 /$, tau = 4 h
            horizon=4 * 3600.0,           # rolling horizon: crypto trades 24/7
            tick=0.1,
            lot=0.01,
            size_step=0.001,
            max_inventory=5.0,
            trend_fast=6 * 3600.0,
            trend_slow=24 * 3600.0,
            sigma_window=7 * 86_400.0,
            calib_window=30 * 86_400.0,
            recalibrate=86_400.0,
            min_bars=72,
        ),
    ),
}

_DEFAULT_FILL = {"ticks": "trade_through", "bars": "trade_through"}
# copied from metrics["total"] to the top of the result for quick access
_HEADLINE = ("total_pnl", "spread_pnl", "inventory_pnl", "fees", "broker_pnl", "reconciles",
             "fills_bid", "fills_ask", "fills_taker", "fill_ratio")


def _strategy_keys():
    from s4_strategies.strategies.market_maker import AvellanedaStoikovStrategy

    return set(AvellanedaStoikovStrategy.params._getkeys())


def run_market_making(source: str = "ticks", fill_model: str | None = None, out=None, *,
                      dataset: str | None = None, fromdate=None, todate=None,
                      max_events: int | None = None, seed: int = 0, queue: str = "queue",
                      require_touch: bool | None = None, intensity=None, cash: float = 1_000_000.0,
                      maker: float = BYBIT_MAKER, taker: float = BYBIT_TAKER,
                      per_contract: float | None = None, mult: float = 1.0,
                      margin: float | None = None, plot: bool = True, verbose: bool = False,
                      **params) -> dict:
    """Run ``AvellanedaStoikovStrategy`` on embedded data and return its metrics.

    - ``source``: ``"ticks"`` (merged trades + BBO, ``feeds.TickData``) or ``"bars"``
      (hourly bars, ``feeds.EmbeddedData``); ``dataset``/``fromdate``/``todate``/
      ``max_events`` narrow or replace the preset's data.
    - ``fill_model``: ``"trade_through"`` (default; ``None``/``"auto"`` pick it),
      ``"intensity"`` or ``"touch"``;
      ``queue``, ``require_touch``, ``intensity`` (``(A, kappa)``), ``seed``: see
      ``MarketMakingBroker``.
    - fees: ``maker``/``taker`` fractions (Bybit linear 0.02 % / 0.055 %; negative = rebate),
      or ``per_contract`` (a fixed fee per contract per side, futures-like with ``mult``
      and ``margin``).
    - ``**params``: ``AvellanedaStoikovStrategy`` params, over the preset.
    - ``cash``: the starting cash of the broker (returns are measured against it).
    - ``out``: a folder for the report the other strategies write (``analyzers.write_report``:
      ``tearsheet.html``, ``metrics.json``, ``equity_drawdown.png``) plus ``mm_metrics.json``
      and ``mm_inventory.png``. ``metrics.json`` has the same layout as theirs, with this
      result (less ``table`` and ``files``) under ``"market_making"`` and ``cash``,
      ``final_value``. Ticks are measured once a second (``sample="1s"``); the tear sheet
      is built from UTC days, so a run inside one UTC day gets none (``RuntimeWarning``).

    Returns ``{"source", "dataset", "fill_model", "params", "metrics", "calibration",
    "table", "files", "cash", "final_value", "report"}`` plus the headline numbers of
    ``metrics["total"]`` (``total_pnl, spread_pnl, inventory_pnl, fees, broker_pnl,
    reconciles, fills_bid, fills_ask, fills_taker, fill_ratio``) at the top level;
    ``metrics`` is the analyzer's ``get_analysis()`` as plain dicts (``metrics["total"]`` and
    one entry per feed); ``report`` is the portfolio's ``{"metrics", "trades", "files"}``
    (returns metrics as for the other strategies; ``files`` only with ``out``).
    """
    import feeds.ticks as ticks
    from analyzers.market_making import MarketMakingAnalyzer, format_table, plot_inventory
    from feeds import ArrayData
    from s4_strategies.fees import MakerTakerCommInfo
    from s4_strategies.market_making.broker import MarketMakingBroker
    from s4_strategies.strategies.market_maker import AvellanedaStoikovStrategy

    if source not in PRESETS:
        raise ValueError(f"source must be one of {sorted(PRESETS)}, not {source!r}")
    preset = PRESETS[source]
    if fill_model in (None, "auto", "default"):
        fill_model = _DEFAULT_FILL[source]
    unknown = set(params) - _strategy_keys()
    if unknown:
        raise TypeError(f"unknown strategy parameter(s): {sorted(unknown)}")
    sparams = {**preset["strategy"], **params}
    dataset = dataset or preset["dataset"]

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker = MarketMakingBroker(fill_model=fill_model, queue=queue, seed=seed,
                                       require_touch=require_touch, intensity=intensity)
    cerebro.broker.setcash(cash)
    if per_contract is not None:
        comm = MakerTakerCommInfo.futures(round_turn=2.0 * per_contract, mult=mult,
                                          margin=margin or 1000.0)
    else:
        comm = MakerTakerCommInfo(maker=maker, taker=taker)
    cerebro.broker.addcommissioninfo(comm)

    symbol = dataset.split(":")[1] if ":" in dataset else dataset
    if source == "ticks":
        frame = ticks.load_ticks(dataset, fromdate=fromdate, todate=todate,
                                 max_events=max_events)
        data = ticks.TickData(dataname=frame)
    else:
        fromdate = fromdate or preset.get("fromdate")
        todate = todate or preset.get("todate")
        frame = _bars(dataset, fromdate, todate, max_events)
        data = ArrayData(dataname=frame)
    cerebro.adddata(data, name=symbol)
    cerebro.addstrategy(AvellanedaStoikovStrategy, **sparams)
    cerebro.addanalyzer(MarketMakingAnalyzer, _name="mm")
    title = f"Market making on {dataset} ({source}, {fill_model} fills)"
    analyzers.add_all(cerebro, benchmark="buyhold", calendar="crypto", title=title,
                      strategy_name="market making", qs_table=out is not None,
                      sample="1s" if source == "ticks" else None)  # events: per second
    strat = cerebro.run()[0]
    an = strat.analyzers.mm
    metrics = _plain(an.get_analysis())
    table = format_table(metrics)
    result = {
        "source": source,
        "dataset": dataset,
        "fill_model": fill_model,
        **{k: metrics["total"].get(k) for k in _HEADLINE},
        "params": _plain(sparams),
        "metrics": metrics,
        "calibration": _plain(strat.calibration()),
        "table": table,
        "files": [],
        "cash": float(cash),
        "final_value": float(cerebro.broker.getvalue()),
    }
    result["report"] = {"metrics": strat.analyzers.quantstats.get_analysis()["metrics"],
                        "trades": strat.analyzers.tradestats.get_analysis(), "files": {}}
    if out is not None:
        outdir = Path(out)
        outdir.mkdir(parents=True, exist_ok=True)
        result["report"] = _write_report(strat, outdir, result)
        result["files"].extend(str(p) for p in result["report"]["files"].values())
        path = outdir / "mm_metrics.json"
        path.write_text(json.dumps(_mm_summary(result), indent=2, default=str))
        result["files"].append(str(path))
        if plot:
            png = outdir / "mm_inventory.png"
            plot_inventory(an, png, title=f"{dataset} ({source}, {fill_model} fills)")
            result["files"].append(str(png))
    if verbose:
        print(table)
    return result


def _mm_summary(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("files", "table", "report")}


def _write_report(strat, outdir: Path, result: dict) -> dict:
    """``analyzers.write_report`` (tear sheet, metrics.json, equity PNG), then this run's
    market-making numbers added to ``metrics.json``."""
    report = analyzers.write_report(strat, outdir)
    path = report["files"]["metrics"]
    full = json.loads(path.read_text())
    full.update(analyzers.json_safe({"cash": result["cash"], "final_value": result["final_value"],
                                     "market_making": _mm_summary(result)}))
    path.write_text(json.dumps(full, indent=2, allow_nan=False))
    return report


def _bars(dataset, fromdate, todate, max_events):
    import feeds

    df = feeds.load_embedded(dataset, fromdate=fromdate, todate=todate)
    if max_events is not None:
        df = df.iloc[: int(max_events)]
    return df


def _plain(obj):
    """Analyzer output (AutoOrderedDicts, numpy scalars, nan) as JSON-friendly values."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
