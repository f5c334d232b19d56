"""One call that runs the market maker on the embedded data: ``run_market_making``.

Used by ``scripts/run_market_making.py`` and ``s4trade backtest --strategy market-making``.
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import dataclass
from pathlib import Path

import backtrader as bt

import analyzers

from ..fees import BYBIT_MAKER, BYBIT_TAKER

__all__ = ["PRESETS", "MarketMakingSetup", "build_market_making", "backtest_market_making",
           "dataset_source", "run_market_making"]

# Strategy presets per source, in the units of s4_strategies.market_making (seconds, price,
# lots). gamma follows the rule of thumb gamma ≈ 1/(kappa·sigma²·tau): one lot of inventory
# moves the reservation price by about one base half-spread 1/kappa. tick, lot and size_step
# come per instrument from market_making.presets.
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


@dataclass
class MarketMakingSetup:
    """A ready, not yet run, market-making Cerebro and what it was built from: ``feeds``
    (``{feed name: dataset}``), the strategy's ``params`` (with ``instruments``)."""

    cerebro: bt.Cerebro
    source: str
    fill_model: str
    feeds: dict
    params: dict


def dataset_source(name: str) -> str | None:
    """``"ticks"`` or ``"bars"`` for an embedded dataset (``:trades``/``:bbo`` halves name
    their tick dataset), ``None`` for anything else."""
    import feeds

    if name in feeds.list_embedded("bars"):
        return "bars"
    base = name.removesuffix(":trades").removesuffix(":bbo")
    return "ticks" if f"{base}:trades" in feeds.list_embedded("ticks") else None


def _datasets(source: str, dataset) -> list[str]:
    if not dataset:
        return [PRESETS[source]["dataset"]]
    names = [dataset] if isinstance(dataset, str) else list(dataset)
    for name in names:
        kind = dataset_source(name)
        if kind is not None and kind != source:
            raise ValueError(f"{name} is a {kind} dataset, not {source}: run all ticks or all "
                             f"bars, with source={kind!r}")
    return names


def _load(source: str, dataset: str, fromdate, todate, max_events):
    """``(feed, prices)``: the backtrader feed of ``dataset`` and the prices its tick is read
    from when it has no preset (BBO and trades; OHLC on bars)."""
    import feeds
    import feeds.ticks as ticks

    if source == "ticks":
        frame = ticks.load_ticks(dataset, fromdate=fromdate, todate=todate,
                                 max_events=max_events)
        return ticks.TickData(dataname=frame), frame[["bid", "ask", "trade_price"]].to_numpy()
    frame = feeds.load_embedded(dataset, fromdate=fromdate or PRESETS[source].get("fromdate"),
                                todate=todate or PRESETS[source].get("todate"))
    if max_events is not None:
        frame = frame.iloc[: int(max_events)]
    return feeds.ArrayData(dataname=frame), frame[["open", "high", "low", "close"]].to_numpy()


def _broker(fill_model, queue, queue_power, latency, seed, require_touch, intensity, cash,
            maker, taker, per_contract, mult, margin):
    from s4_strategies.fees import MakerTakerCommInfo
    from s4_strategies.market_making.broker import MarketMakingBroker

    optional = {k: v for k, v in (("latency", latency), ("require_touch", require_touch))
                if v is not None}  # None: the broker's default
    broker = MarketMakingBroker(fill_model=fill_model, queue=queue, queue_power=queue_power,
                                seed=seed, intensity=intensity, **optional)
    broker.setcash(cash)
    if per_contract is not None:
        comm = MakerTakerCommInfo.futures(round_turn=2.0 * per_contract, mult=mult,
                                          margin=margin or 1000.0)
    else:
        comm = MakerTakerCommInfo(maker=maker, taker=taker)
    broker.addcommissioninfo(comm)
    return broker


def build_market_making(source: str = "ticks", fill_model: str | None = None, *,
                        dataset=None, fromdate=None, todate=None, max_events: int | None = None,
                        params: dict | None = None, seed: int = 0, queue: str = "prob",
                        queue_power: float = 3.0, latency=None, require_touch: bool | None = None,
                        intensity=None, cash: float = 1_000_000.0, maker: float = BYBIT_MAKER,
                        taker: float = BYBIT_TAKER, per_contract: float | None = None,
                        mult: float = 1.0, margin: float | None = None,
                        **strategy_params) -> MarketMakingSetup:
    """The Cerebro ``run_market_making`` runs (its arguments are documented there), with
    the strategy and ``MarketMakingAnalyzer`` (``"mm"``) but not the report analyzers."""
    from analyzers.market_making import MarketMakingAnalyzer
    from s4_strategies.market_making.presets import (
        feed_names,
        instrument_overrides,
        instrument_preset,
    )
    from s4_strategies.strategies.market_maker import AvellanedaStoikovStrategy

    if source not in PRESETS:
        raise ValueError(f"source must be one of {sorted(PRESETS)}, not {source!r}")
    if fill_model in (None, "auto", "default"):
        fill_model = _DEFAULT_FILL[source]
    keys = _strategy_keys()
    unknown = set(strategy_params) - keys
    if unknown:
        raise TypeError(f"unknown strategy parameter(s): {sorted(unknown)}")
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker = _broker(fill_model, queue, queue_power, latency, seed, require_touch,
                             intensity, cash, maker, taker, per_contract, mult, margin)
    names = feed_names(_datasets(source, dataset))
    presets = {}
    for name, ds in names.items():
        data, prices = _load(source, ds, fromdate, todate, max_events)
        cerebro.adddata(data, name=name)
        presets[name] = instrument_preset(ds, prices)
    # the exchange fills whole lot steps: partial queue fills are rounded down to them
    cerebro.broker.p.size_step = {n: p["size_step"] for n, p in presets.items()
                                  if p.get("size_step")}
    common, instruments = instrument_overrides(names, {**strategy_params, **(params or {})},
                                               keys, presets)
    sparams = {**PRESETS[source]["strategy"], **common, "instruments": instruments}
    cerebro.addstrategy(AvellanedaStoikovStrategy, **sparams)
    cerebro.addanalyzer(MarketMakingAnalyzer, _name="mm")
    return MarketMakingSetup(cerebro, source, fill_model, names, sparams)


def run_market_making(source: str = "ticks", fill_model: str | None = None, out=None, *,
                      plot: bool = True, verbose: bool = False, **kwargs) -> dict:
    """Run ``AvellanedaStoikovStrategy`` on embedded data and return its metrics.

    - ``source``: ``"ticks"`` (merged trades + BBO, ``feeds.TickData``) or ``"bars"``
      (hourly bars, ``feeds.EmbeddedData``); ``dataset`` (one name or a list, all ticks or all
      bars; each a feed named by its symbol, or by the dataset when two share one),
      ``fromdate``/``todate``/``max_events`` (per dataset) narrow or replace the preset's.
    - ``fill_model``: ``"trade_through"`` (default; ``None``/``"auto"`` pick it),
      ``"intensity"`` or ``"touch"``; ``queue`` (``"prob"``, ``"risk_averse"``, ``"through"``,
      ``"touch"``), ``queue_power`` (3), ``latency`` (a ``market_making.latency
      .parse_latency`` spec: a preset name, ``(feed, entry, response[, cancel])`` seconds or
      ``"FEED,ENTRY,RESPONSE[,CANCEL]"`` ms; ``None``: the broker's default),
      ``require_touch`` (``None``: the broker's default), ``intensity``
      (``(A, kappa)``), ``seed``: see ``MarketMakingBroker``.
    - fees: ``maker``/``taker`` fractions (Bybit linear 0.02 % / 0.055 %; negative = rebate),
      or ``per_contract`` (a fixed fee per contract per side, futures-like with ``mult``
      and ``margin``).
    - strategy params, over the source's preset: each instrument's real ``tick``, ``lot``
      and ``size_step`` (``market_making.presets.instrument_preset``) go into the strategy's
      ``instruments``; ``**strategy_params`` (for every feed) and ``params``, a flat dict or
      a per-symbol mapping ``{"BTCUSDT": {"gamma": 1e-3}, "*": {...}}``, over them
      (``presets.instrument_overrides``: per symbol wins over ``"*"``, which wins over the
      presets).
    - ``cash``: the starting cash of the broker (returns are measured against it).
    - ``out``: a folder for the report the other strategies write (``analyzers.write_report``:
      ``tearsheet.html``, ``metrics.json``, ``equity_drawdown.png``) plus ``mm_metrics.json``
      and ``mm_inventory.png`` (one feed; with several ``mm_inventory_<feed>.png`` each),
      and ``mm_report.html``, the market maker's own report (``analyzers.mm_report``).
      ``metrics.json`` has the same layout as theirs, with this result (less ``table`` and
      ``files``) under ``"market_making"`` and ``cash``, ``final_value``. Ticks are measured
      once a second (``sample="1s"``); the quantstats tear sheet (from UTC days) is written
      only when the run spans ``analyzers.mm_report.MIN_TEARSHEET_DAYS`` days, else the
      report says why and the annualised ratios are left out.

    Returns ``{"source", "dataset", "feeds", "fill_model", "broker", "params", "metrics",
    "calibration", "table", "files", "cash", "final_value", "report"}`` plus the headline
    numbers of ``metrics["total"]`` (``total_pnl, spread_pnl, inventory_pnl, fees,
    broker_pnl, reconciles, fills_bid, fills_ask, fills_taker, fill_ratio``; the sum over
    the feeds) at the top level. ``dataset`` is the name given (a list for several),
    ``feeds`` ``{feed name: dataset}``, ``broker`` its ``queue``, ``queue_power`` and
    ``latency`` (ms); ``metrics`` is the analyzer's ``get_analysis()`` as plain dicts
    (``metrics["total"]`` and one entry per feed); ``calibration`` the feed's ``sigma, A,
    kappa`` (``{feed name: ...}`` with several); ``report`` is the portfolio's ``{"metrics",
    "trades", "files"}`` (returns metrics as for the other strategies; ``files`` only with
    ``out``).
    """
    from analyzers.market_making import format_table

    setup = build_market_making(source, fill_model, **kwargs)
    cerebro, names = setup.cerebro, setup.feeds
    label = ", ".join(names.values())
    title = f"Market making on {label} ({source}, {setup.fill_model} fills)"
    analyzers.add_all(cerebro, benchmark="buyhold", calendar="crypto", title=title,
                      strategy_name="market making", qs_table=out is not None,
                      sample="1s" if source == "ticks" else None)  # events: per second
    strat = cerebro.run()[0]
    metrics = _plain(strat.analyzers.mm.get_analysis())
    calibration = {name: _plain(strat.calibration(data)) for name, data in
                   zip(names, strat.datas)}
    broker = cerebro.broker
    result = {
        "source": source,
        "dataset": label if len(names) == 1 else list(names.values()),
        "feeds": dict(names),
        "fill_model": setup.fill_model,
        "broker": {"queue": broker.p.queue, "queue_power": broker.p.queue_power,
                   "latency": broker.latency.ms()},
        **{k: metrics["total"].get(k) for k in _HEADLINE},
        "params": _plain(setup.params),
        "metrics": metrics,
        "calibration": next(iter(calibration.values())) if len(names) == 1 else calibration,
        "table": "\n\n".join(format_table(metrics, name) for name in
                               (list(names) + ["total"] if len(names) > 1 else [None])),
        "files": [],
        "cash": float(broker.startingcash),
        "final_value": float(broker.getvalue()),
    }
    result["report"] = {"metrics": strat.analyzers.quantstats.get_analysis()["metrics"],
                        "trades": strat.analyzers.tradestats.get_analysis(), "files": {}}
    if out is not None:
        from .market_making_report import write_files

        write_files(strat, Path(out), result, plot)
    if verbose:
        print(result["table"])
    return result


def backtest_market_making(data, out, *, fromdate=None, todate=None, fill_model=None,
                           params: dict | None = None, **kwargs) -> dict:
    """``s4trade backtest --strategy market-making``: ``run_market_making`` on the embedded
    datasets ``data`` together (all ticks or all bars; ``name:trades``/``name:bbo`` stand for
    the tick dataset ``name``), the report written to ``out``.

    ``params`` (``--params``) holds ``build_market_making`` keywords (``max_events``,
    ``seed``, ``maker``, ...), strategy params and per-symbol mappings in one dict;
    ``kwargs`` (``cash``, ``queue``, ``queue_power``, ``latency``; ``None``: not given) win
    over it. Returns the summary the other strategies' backtests return (``strategy, data,
    final_value, metrics, trades, files, out``, the run under ``market_making``), also added
    to ``out/metrics.json``.
    """
    import feeds

    from .sources import SourceError

    data = [data] if isinstance(data, str) else list(data)
    kinds = {name: dataset_source(name) for name in data}
    unknown = [name for name, kind in kinds.items() if kind is None]
    if unknown or not data:
        raise SourceError(f"market making runs on embedded data, not {', '.join(unknown)}: "
                          f"{', '.join(feeds.list_embedded())}")
    if len(set(kinds.values())) > 1:
        raise ValueError("market making runs all ticks or all bars together: "
                         + ", ".join(f"{n} ({k})" for n, k in kinds.items()))
    params = dict(params or {})
    run_keys = set(inspect.signature(build_market_making).parameters) - \
        {"source", "fill_model", "dataset", "params", "strategy_params"}
    kw = {k: params.pop(k) for k in list(params) if k in run_keys}
    kw.update({k: v for k, v in dict(fromdate=fromdate, todate=todate, **kwargs).items()
               if v is not None})
    res = run_market_making(kinds[data[0]], fill_model, out=str(out), dataset=data,
                            params=params, **kw)
    report = res.get("report") or {}
    summary = {"strategy": "market-making", "data": data, "final_value": res["final_value"],
               "metrics": report.get("metrics", {}), "trades": report.get("trades", {}),
               "files": {k: str(v) for k, v in (report.get("files") or {}).items()},
               "market_making": {k: v for k, v in res.items() if k not in ("report", "files")},
               "out": str(out)}
    path = Path(out) / "metrics.json"  # run_market_making wrote the common layout: add to it
    full = json.loads(path.read_text()) if path.exists() else {}
    full.update(analyzers.json_safe(summary))
    path.write_text(json.dumps(full, indent=2, default=str))
    return summary


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
