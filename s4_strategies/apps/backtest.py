"""``s4trade backtest``: one strategy over any ``--data`` source (see ``sources``), with metrics
and a tear sheet, out of sample by default."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd

from feeds.bartime import utc_timestamp
from feeds.errors import DataError

from ..model import default_checkpoint, default_multi_checkpoint
from .sources import DEFAULT_CACHE, check_period, end_of, load_source, make_feed, parse_source

STRATEGIES = ("directional", "portfolio", "multi-asset", "market-making")
DEFAULT_CASH = 100_000.0


class InSampleWarning(UserWarning):
    """The backtest period overlaps the data the checkpoint was trained or validated on."""


def load_predictor(model=None, strategy: str = "directional"):
    """A loaded model: ``model`` is a checkpoint path, a loaded model, or None (the shipped
    checkpoint; for ``multi-asset`` the shipped multi-asset one, an "s4-multi/1" file)."""
    from ..model import load_model, load_multi

    if strategy == "multi-asset":
        model = default_multi_checkpoint() if model is None else model
        return load_multi(model) if isinstance(model, (str, Path)) else model
    model = default_checkpoint() if model is None else model
    return load_model(model) if isinstance(model, (str, Path)) else model


def trained_data(predictor) -> list[str]:
    """The ``--data`` values a multi-asset checkpoint was trained on (``meta["data"]``)."""
    data = (getattr(predictor, "meta", None) or {}).get("data")
    if not isinstance(data, dict) or not data:
        raise ValueError("the checkpoint does not say which data it was trained on: pass "
                         "--data with one value per asset")
    return [str(data.get(a, a)) for a in predictor.assets]


def data_names(strategy: str, predictor, sources) -> list[str]:
    """The name each data gets in the Cerebro: its symbol; for ``multi-asset`` the model's
    asset that the ``--data`` value or its symbol names (``ValueError`` for one it does not
    trade)."""
    if strategy != "multi-asset":
        return [src.symbol for src in sources]
    assets = list(predictor.assets)
    names = []
    for src in sources:
        match = [a for a in assets if a in (src.spec, src.symbol)]
        if not match:
            raise ValueError(f"--data {src.spec}: the multi-asset model trades {assets}, not "
                             f"{src.symbol}")
        names.append(match[0])
    missing = [a for a in assets if a not in names]
    if missing or len(set(names)) != len(names):
        raise ValueError(f"the multi-asset model trades {assets}: --data must list each of "
                         f"them once (got {[src.spec for src in sources]})")
    return names


def seen_span(predictor) -> dict | None:
    """What the checkpoint has seen: its train and validation spans (``meta["periods"]``) and
    the label horizon that reads past the last validation bar; None when it does not say."""
    meta = getattr(predictor, "meta", None) or {}
    periods = meta.get("periods") or {}
    train, val = periods.get("train"), periods.get("val")
    if not train:
        return None
    spans = {k: (utc_timestamp(v[0]), utc_timestamp(v[1])) for k, v in
             (("train", train), ("val", val)) if v}
    spacing = meta.get("bar_spacing_s")
    return {**spans, "end": max(b for _, b in spans.values()),
            "horizon": int(predictor.label_spec.max_horizon),
            "spacing": None if spacing is None else pd.Timedelta(seconds=float(spacing))}


def first_unseen_bar(index, seen: dict):
    """The first bar of ``index`` that no training or validation label read (as
    ``training.date_split`` starts its test period): ``horizon`` bars after the last
    validation bar. When ``index`` starts after that bar, the labels reached ``horizon``
    of the checkpoint's bar lengths past it (the spacing of ``index`` if the checkpoint does
    not record its own). None when ``index`` ends before it."""
    after = int(index.searchsorted(seen["end"], side="right"))
    spacing = seen.get("spacing")
    if spacing is None and len(index) > 1:
        spacing = (index[1:] - index[:-1]).median()
    if after > 0 or spacing is None:  # the bars after the last seen one are here: count
        i = after + seen["horizon"]
    else:
        i = int(index.searchsorted(seen["end"] + seen["horizon"] * spacing, side="right"))
    return index[i] if i < len(index) else None


def _span_text(seen: dict) -> str:
    parts = [f"{label} {seen[k][0]:%Y-%m-%d %H:%M} .. {seen[k][1]:%Y-%m-%d %H:%M}"
             for k, label in (("train", "train"), ("val", "validation")) if k in seen]
    return ", ".join(parts)


def resolve_period(seen: dict | None, frames: dict, fromdate=None, todate=None):
    """``(start, end, warnings)``. Without ``fromdate`` the period starts at the first bar the
    checkpoint has not seen (in every data); a requested period that overlaps what it has
    seen gets an in-sample warning."""
    end = end_of(todate)
    if seen is None:
        return (None if fromdate is None else utc_timestamp(fromdate)), end, []
    unseen = [first_unseen_bar(df.index, seen) for df in frames.values()]
    first = None if any(u is None for u in unseen) else max(unseen)
    if fromdate is None:
        if first is None:
            raise DataError(
                f"{', '.join(frames)}: no bars after the checkpoint's data ({_span_text(seen)}, "
                f"plus {seen['horizon']} label bars); pass --from/--to to backtest in-sample")
        start = first
    else:
        start = utc_timestamp(fromdate)
    warns = []
    if (first is None or start < first) and (end is None or end >= seen["train"][0]):
        oos = f"; out of sample starts at {first:%Y-%m-%d %H:%M}" if first is not None else ""
        warns.append(
            f"IN-SAMPLE: the period from {start:%Y-%m-%d %H:%M} overlaps the data the "
            f"checkpoint was trained and validated on ({_span_text(seen)}, plus "
            f"{seen['horizon']} label bars): these numbers are not out of sample{oos} "
            "(the default without --from)")
    return start, end, warns


def _param_type(default):
    """The type a strategy param takes, from its default (pydantic checks it)."""
    from typing import Any

    if isinstance(default, bool):
        return bool
    if isinstance(default, (int, float)):
        return float if isinstance(default, float) else int | float
    if isinstance(default, str):
        return str
    if isinstance(default, (dict, list, tuple)):
        return type(default) | None
    return Any


def _check_params(strategy_cls, strategy: str, params: dict) -> None:
    """Unknown names and values of the wrong type (a number given as text, a flag as a
    number): ``ValueError`` naming the parameter."""
    from pydantic import ConfigDict, ValidationError, create_model

    accepted = [k for k in strategy_cls.params._getkeys() if k != "model"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"unknown {strategy} parameter(s) {', '.join(unknown)}; accepted: "
                         f"{', '.join(accepted)} (the model comes from --model)")
    defaults = strategy_cls.params._getkwargsdefault()
    fields = {k: (_param_type(defaults[k]) | None if defaults[k] is None else
                  _param_type(defaults[k]), defaults[k]) for k in params}
    schema = create_model(f"{strategy}_params", __config__=ConfigDict(strict=True), **fields)
    try:
        schema.model_validate(params)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ValueError(f"{strategy} parameter {err['loc'][0]}: {err['msg'].lower()}, got "
                         f"{err.get('input')!r} (default {defaults[err['loc'][0]]!r})"
                         ) from None


def build_cerebro(strategy: str, data: list, model=None, fromdate=None, todate=None,
                  cash: float = DEFAULT_CASH, runonce: bool = True, params: dict | None = None,
                  frames: dict | None = None, cache_dir=DEFAULT_CACHE):
    """A ready Cerebro: datas (any ``--data`` form, see ``sources``), the strategy with its
    model, cash. Fees: the strategy's ``fees`` param (Bybit taker by default)."""
    import backtrader as bt

    from ..strategies.directional import S4DirectionalStrategy
    from ..strategies.multi_asset import S4MultiAssetStrategy
    from ..strategies.portfolio import S4PortfolioStrategy

    classes = {"directional": S4DirectionalStrategy, "portfolio": S4PortfolioStrategy,
               "multi-asset": S4MultiAssetStrategy}
    if strategy not in classes:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    if strategy == "directional" and len(data) != 1:
        raise ValueError("the directional strategy trades one data; pass one --data")
    params = dict(params or {})
    _check_params(classes[strategy], strategy, params)
    cerebro = bt.Cerebro(runonce=runonce, stdstats=False)
    cerebro.broker.setcash(cash)
    predictor = load_predictor(model, strategy)
    sources = [parse_source(spec) for spec in data]
    for spec, src, name in zip(data, sources, data_names(strategy, predictor, sources)):
        df = (frames or {}).get(spec)
        if df is None:
            df = load_source(src, fromdate, todate, cache_dir=cache_dir, bars_only=False)
        cerebro.adddata(make_feed(src, df, fromdate, todate), name=name)
    cerebro.addstrategy(classes[strategy], model=predictor, **params)
    return cerebro


def run_backtest(strategy: str, data, model=None, fromdate=None, todate=None,
                 out="runs/backtest", cash: float | None = None, runonce: bool = True,
                 fill_model=None, params: dict | None = None,
                 cache_dir=DEFAULT_CACHE) -> dict:
    """Run, print nothing, write ``metrics.json``, ``tearsheet.html`` and pictures to ``out``
    (``equity_drawdown.png``; ``weights.png``/``weights.csv``: what each data held).
    Several datas are benchmarked against their equal-weight buy and hold, one against its
    buy and hold.

    Without ``fromdate`` the model strategies start after the checkpoint's training and
    validation data (and its label horizon); a period that overlaps them still runs, with an
    :class:`InSampleWarning` and ``"in_sample": true`` in the summary. A bare ``todate`` date
    includes its whole day. ``cash`` defaults to 100,000 (the market maker: its own default).
    ``multi-asset`` without ``data``: the datas the checkpoint was trained on
    (``meta["data"]``).
    """
    import analyzers

    data = [data] if isinstance(data, str) else list(data or [])
    out = Path(out)
    if strategy == "market-making":
        from .market_making import backtest_market_making

        out.mkdir(parents=True, exist_ok=True)
        return backtest_market_making(data, out, fromdate=fromdate, todate=todate,
                                      fill_model=fill_model, params=params, cash=cash)
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    sources = [parse_source(spec) for spec in data]  # bad names fail before the model loads
    if strategy == "directional" and len(data) != 1:
        raise ValueError("the directional strategy trades one data; pass one --data")
    check_period(fromdate, todate)
    predictor = load_predictor(model, strategy)
    if not data:
        data = trained_data(predictor)
        sources = [parse_source(spec) for spec in data]
    data_names(strategy, predictor, sources)  # the assets match before any bar is read
    seen = seen_span(predictor)
    frames = {}
    for spec, src in zip(data, sources):
        lo = fromdate
        if seen is not None:  # read from the last seen bar: its label bars are counted
            lo = seen["end"] if fromdate is None else min(utc_timestamp(fromdate), seen["end"])
        frames[spec] = load_source(src, lo, todate, cache_dir=cache_dir, bars_only=False)
    start, end, warns = resolve_period(seen, frames, fromdate, todate)
    for w in warns:
        warnings.warn(w, InSampleWarning, stacklevel=2)
    frames = {k: _cut(k, df, start, end) for k, df in frames.items()}
    cerebro = build_cerebro(strategy, data, predictor, start, end,
                            DEFAULT_CASH if cash is None else cash, runonce, params, frames)
    out.mkdir(parents=True, exist_ok=True)
    analyzers.add_all(cerebro, output=str(out / "tearsheet.html"),
                      benchmark="buyhold" if len(data) == 1 else "equal_weight",
                      title=f"S4 {strategy} on {', '.join(data)}")
    cerebro.addanalyzer(analyzers.PositionWeights, _name="weights")
    strat = cerebro.run()[0]
    report = analyzers.write_report(strat, out)
    summary = {
        "strategy": strategy,
        "data": data,
        "model": str(model or (default_multi_checkpoint() if strategy == "multi-asset"
                               else default_checkpoint())),
        "from": str(start) if start is not None else None,
        "to": str(end) if end is not None else None,
        "period_default": fromdate is None and seen is not None,
        "in_sample": bool(warns),
        "warnings": warns,
        "final_value": cerebro.broker.getvalue(),
        "metrics": report.get("metrics", {}),
        "benchmark": strat.analyzers.quantstats.get_analysis().get("benchmark_name"),
        "trades": report.get("trades", {}),
        "files": report.get("files", {}),
        "out": str(out),
    }
    path = out / "metrics.json"
    full = json.loads(path.read_text()) if path.exists() else {}
    full.update(analyzers.json_safe(summary))
    path.write_text(json.dumps(full, indent=2))
    return summary


def _cut(name, df, start, end):
    kept = df
    if start is not None:
        kept = kept[kept.index >= start]
    if end is not None:
        kept = kept[kept.index <= end]
    if not len(kept):
        raise DataError(f"{name}: no bars between {start} and {end}")
    return kept


KEYS = [
    ("final value", "final_value", "{:,.2f}"),
    ("CAGR", "cagr", "{:.2%}"),
    ("Sharpe", "sharpe", "{:.2f}"),
    ("Sortino", "sortino", "{:.2f}"),
    ("max drawdown", "max_drawdown", "{:.2%}"),
    ("Calmar", "calmar", "{:.2f}"),
    ("volatility", "volatility", "{:.2%}"),
    ("win rate", "win_rate", "{:.2%}"),
    ("profit factor", "profit_factor", "{:.2f}"),
]


def print_metrics(res: dict) -> None:
    """The summary, rounded; in-sample warnings again at the end, on stderr."""
    import sys

    if res.get("strategy") == "market-making":
        mm = res["market_making"]
        print(f"\nmarket making on {', '.join(res['data'])} "
              f"(fill model: {mm.get('fill_model')})")
        print(mm.get("table", ""))
        print(f"  written to {res['out']}")
        return
    m = dict(res.get("metrics") or {})
    m["final_value"] = res.get("final_value")
    print(f"\n{res['strategy']} on {', '.join(res['data'])}")
    if res.get("from") or res.get("to"):
        how = ("IN-SAMPLE" if res.get("in_sample")
               else "out of sample" if res.get("period_default") else "as requested")
        print(f"  {'period':<14} {_day(res.get('from'))} .. {_day(res.get('to'))} ({how})")
    for label, key, fmt in KEYS:
        v = m.get(key)
        print(f"  {label:<14} {fmt.format(v) if isinstance(v, (int, float)) else '–'}")
    if m.get("benchmark_sharpe") is not None:
        b = [f"{label} {fmt.format(m[f'benchmark_{key}'])}" for label, key, fmt in KEYS
             if isinstance(m.get(f"benchmark_{key}"), (int, float))
             and key in ("cagr", "sharpe", "max_drawdown")]
        print(f"  {'benchmark':<14} {res.get('benchmark') or 'buy & hold'}: {', '.join(b)}")
    t = res.get("trades") or {}
    if t:
        print(f"  {'trades':<14} {t.get('closed_trades', t.get('trades', '–'))}")
        if t.get("fees_paid") is not None:
            print(f"  {'fees paid':<14} {t['fees_paid']:,.2f}")
    print(f"  written to {res['out']}")
    for w in res.get("warnings") or []:
        print(f"\nWARNING: {w}", file=sys.stderr)


def _day(value) -> str:
    return "the end" if value is None else str(value)[:16]
