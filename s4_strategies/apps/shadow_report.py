"""``s4trade shadow-report``: a shadow run's journal against the backtest of the same bars.

::

    s4trade shadow-report --journal runs/live/BTCUSDT/journal.jsonl --data bybit:BTCUSDT:60

1. The journal's orders are replayed on the period's bars with the backtest broker, through
   the analyzers: metrics and a tear sheet of what the shadow run did.
2. The same strategy and checkpoint are backtested over the same bars. It sees the same
   history first and orders only from the shadow run's first order event on.
3. The fills of the two are matched bar by bar. Any difference means the live path computed
   something the backtest did not: another bar, another prediction, another fill.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .sources import DEFAULT_CACHE, load_source, parse_source


def shadow_report(journal, data, *, model=None, out="runs/shadow-report", cash=10_000.0,
                  params=None, history=None, frame=None, cache_dir=DEFAULT_CACHE,
                  tearsheet=True, printer=print) -> dict:
    """Compare the journal with a backtest of its period; write ``report.json`` (and the
    replay's ``metrics.json``/tear sheet) to ``out``. ``frame``: the bars (tests); else
    ``data`` is loaded (embedded, a file, or Bybit through the cache); ``tearsheet``: also
    the quantstats HTML of the replay. The backtest starts
    where the shadow run's feed did (the journal's ``data_from``), so the model has the same
    history; ``history``: instead, this many bars before the first order event. A shadow run
    that resumed a saved state began from that state, which a backtest from the history
    approximates (the differences then show in the report)."""
    import backtrader as bt

    import analyzers
    from feeds import ArrayData

    from ..live import ShadowBroker, compare_fills, journal_fills, load_journal, replay
    from ..live.gate import trade_from
    from ..strategies import S4DirectionalStrategy
    from .backtest import load_predictor

    records = [r for r in load_journal(journal) if r.get("bar")]
    if not records:
        raise ValueError(f"{journal}: no order events to compare (did the shadow run trade?)")
    src = parse_source(data)
    first = min(pd.Timestamp(r["bar"]) for r in records)
    last = max(pd.Timestamp(r["bar"]) for r in records)
    predictor = load_predictor(model)
    n_hist = int(history if history is not None else max(4 * predictor.feature_spec.warmup, 500))
    if frame is None:
        spacing = pd.Timedelta(seconds=predictor.meta.get("bar_spacing_s") or 3600)
        frame = load_source(src, first - spacing * (n_hist + 1), last + spacing,
                            cache_dir=cache_dir)
    frame = frame[["open", "high", "low", "close", "volume"]]
    i0 = int(frame.index.searchsorted(first))
    if i0 >= len(frame) or frame.index[i0] != first:
        raise ValueError(f"{src.spec}: no bar at {first}, the journal's first order event")
    starts = [pd.Timestamp(r["data_from"]) for r in records if r.get("data_from")]
    if history is None and starts:  # the shadow run's own history: the same model state
        frame = frame[frame.index >= min(starts)]
    else:
        frame = frame.iloc[max(0, i0 - n_hist):]
    frame = frame[frame.index <= last + (frame.index[1] - frame.index[0])]

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(ArrayData(dataname=frame), name=src.symbol)
    backtest = ShadowBroker()  # backtrader's broker, keeping a journal in memory
    backtest.setcash(float(cash))
    cerebro.setbroker(backtest)
    cerebro.addstrategy(trade_from(S4DirectionalStrategy, first), model=predictor,
                        **(params or {}))
    cerebro.run(runonce=False)
    comparison = compare_fills(journal_fills(records), journal_fills(backtest.records))

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    replayed = replay(records, frame, name=src.symbol, cash=float(cash),
                      setup=lambda c: analyzers.add_all(
                          c, output=str(out / "tearsheet.html") if tearsheet else None,
                          benchmark="buyhold", title=f"S4 shadow run on {src.spec}"))
    metrics = analyzers.write_report(replayed, out, tearsheet=tearsheet).get("metrics", {})
    report = {"journal": str(journal), "data": src.spec, "from": str(first), "to": str(last),
              "fills": comparison, "shadow_final_value": replayed.broker.getvalue(),
              "backtest_final_value": backtest.getvalue(),
              "metrics": analyzers.json_safe(metrics)}
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    agree = comparison["differ"] == 0 and not comparison["only_a"] and not comparison["only_b"]
    printer(f"shadow {first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} on {src.spec}: "
            f"{comparison['n_a']} fills; backtest of the same bars: {comparison['n_b']}; "
            f"{comparison['matched']} identical, {comparison['differ']} different, "
            f"{len(comparison['only_a'])} only in shadow, {len(comparison['only_b'])} only in "
            f"the backtest -> {'AGREE' if agree else 'DIFFER'}")
    printer(f"final value: shadow replay {report['shadow_final_value']:,.2f}, backtest "
            f"{report['backtest_final_value']:,.2f}; report: {out / 'report.json'}")
    report["agree"] = agree
    return report
