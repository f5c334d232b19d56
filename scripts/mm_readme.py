#!/usr/bin/env python
"""Run the market maker's experiments and write their tables into
docs/results/market_making_runs.md (the README held them once, hence the name).

    python scripts/mm_readme.py                 # everything, then the page is rewritten
    python scripts/mm_readme.py --only latency  # one block (ticks, bars, bars-intensity,
                                                # latency, changes, tick-lean)
    python scripts/mm_readme.py --dry-run       # print the blocks, leave the page alone

Each block goes between ``<!-- mm:KEY:begin -->`` and ``<!-- mm:KEY:end -->`` of the page
(``page_block.PAGES``) with the command that made it and its wall time: the market-making
tables are regenerated, never edited by hand. About 10 minutes on two cores. The
cross-check against hftbacktest has its own page, written by
``scripts/crosscheck_hftbacktest.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

from page_block import replace_block

USDM = "binance-usdm:BTCUSDT"
BLOCKS = ("ticks", "bars", "bars-intensity", "latency", "changes", "tick-lean")


def _mm(**kw) -> dict:
    from s4_strategies.apps.market_making import run_market_making

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_market_making(plot=False, **kw)


def _row(label: str, res: dict) -> dict:
    """The headline numbers of a run's total."""
    m = res["metrics"]["total"]
    kinds = m.get("fills_by_kind") or {}
    return dict(label=label, fills_bid=m["fills_bid"], fills_ask=m["fills_ask"],
                fills_taker=m["fills_taker"], rejected=m.get("quotes_rejected"),
                fill_ratio=100 * m["fill_ratio"] if m.get("fill_ratio") is not None else None,
                through=kinds.get("through"), queue=kinds.get("queue"), book=kinds.get("book"),
                taker=kinds.get("taker"), m1=m.get("markout_1s_bps"),
                m10=m.get("markout_10s_bps"), in_flight=m.get("fills_in_flight"),
                breaches=m.get("inventory_breaches"),
                latency_ms=(1e3 * m["fill_latency_median"]
                            if m.get("fill_latency_median") is not None else None),
                spread=m["spread_pnl"], inventory=m["inventory_pnl"], fees=m["fees"],
                total=m["total_pnl"])


RUN_COLUMNS = [("run", "label", "{}"), ("fills bid", "fills_bid", "{:.0f}"),
               ("ask", "fills_ask", "{:.0f}"), ("taker", "fills_taker", "{:.0f}"),
               ("rejected", "rejected", "{:.0f}"), ("fill ratio %", "fill_ratio", "{:.2f}"),
               ("through / queue / book", "kinds", "{}"),
               ("markout 1 s bps", "m1", "{:+.2f}"), ("10 s bps", "m10", "{:+.2f}"),
               ("in flight", "in_flight", "{:.0f}"), ("limit breaches", "breaches", "{:.0f}"),
               ("placed→fill ms", "latency_ms", "{:.0f}"), ("spread PnL", "spread", "{:,.2f}"),
               ("inventory PnL", "inventory", "{:,.2f}"), ("fees", "fees", "{:,.2f}"),
               ("total PnL", "total", "{:,.2f}")]


def _runs_table(rows: list[dict]) -> str:
    from s4_strategies.training.compare import markdown_table

    for r in rows:
        r["kinds"] = " / ".join(str(r.get(k) if r.get(k) is not None else "–")
                                for k in ("through", "queue", "book"))
    return markdown_table(rows, RUN_COLUMNS)


def block_run(source: str, fill_model: str | None, command: str) -> str:
    res = _mm(source=source, fill_model=fill_model)
    broker = res.get("broker") or {}
    return "\n".join([f"`{command}` (fill model {res['fill_model']}, queue "
                      f"{broker.get('queue')}, latency {broker.get('latency')}) printed:", "",
                      "```", res["table"], "```"])


LATENCIES = ("none", "colocated", "cloud", "retail")


def block_latency() -> str:
    from s4_strategies.market_making.latency import parse_latency

    rows = []
    for name in LATENCIES:
        res = _mm(source="ticks", dataset=USDM, latency=name)
        rows.append(_row(f"{name} ({parse_latency(name).ms()})", res))
    return "\n".join([
        f"The Avellaneda–Stoikov preset on the USD-M sample ({USDM}, tick 0.1, queue `prob`, "
        "live requoting) at each latency preset:", "", _runs_table(rows)])


def block_changes() -> str:
    undelayed = (0.005, 0.010, 0.0, 0.010)  # cloud, but reports on the event that made them
    steps = [
        ("before: no latency, risk-averse queue, tick 0.01, aggressive requoting",
         dict(latency="none", queue="risk_averse", tick=0.01, requote="aggressive")),
        ("+ the instrument's tick 0.1",
         dict(latency="none", queue="risk_averse", requote="aggressive")),
        ("+ feed 5 ms, entry and cancel 10 ms (reports not delayed)",
         dict(latency=undelayed, queue="risk_averse", requote="aggressive")),
        ("+ probabilistic queue", dict(latency=undelayed, queue="prob", requote="aggressive")),
        ("+ reports 10 ms late (cloud), still aggressive",
         dict(latency="cloud", queue="prob", requote="aggressive")),
        ("+ live requoting (now the defaults)", dict(latency="cloud", queue="prob")),
    ]
    rows = [_row(label, _mm(source="ticks", dataset=USDM, **kw)) for label, kw in steps]
    return "\n".join([f"One change at a time on the USD-M sample ({USDM}):", "",
                      _runs_table(rows)])


def block_tick_lean() -> str:
    import torch

    from feeds.ticks import load_ticks
    from s4_strategies.features.tick import TickFeatureSpec
    from s4_strategies.training.tick_lean import TickLeanConfig, train_tick_lean

    torch.set_num_threads(1)
    out = []
    for dataset, tick in ((USDM, 0.1), ("binance:BTCUSDT", 0.01)):
        spec = TickFeatureSpec(tick=tick)
        result = train_tick_lean(load_ticks(dataset), TickLeanConfig(), spec,
                                 data_name=dataset)
        verdict = "used" if result.has_skill else "NOT used (emits 0)"
        out += [f"**{dataset}** — the lean is {verdict}:", "", result.table(), ""]
    return "\n".join(out)


def build(key: str) -> str:
    if key == "ticks":
        return block_run("ticks", None, "s4trade backtest --strategy market-making "
                                         "--data binance:BTCUSDT:trades")
    if key == "bars":
        return block_run("bars", None, "s4trade backtest --strategy market-making --data "
                                       "bybit:BTCUSDT:60 --from 2024-01-01 --to 2024-12-31")
    if key == "bars-intensity":
        return block_run("bars", "intensity", "s4trade backtest --strategy market-making "
                         "--data bybit:BTCUSDT:60 --from 2024-01-01 --to 2024-12-31 "
                         "--fill-model intensity")
    return {"latency": block_latency, "changes": block_changes,
            "tick-lean": block_tick_lean}[key]()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", action="append", choices=BLOCKS, help="blocks to run (repeat)")
    p.add_argument("--dry-run", action="store_true", help="print, do not touch the page")
    args = p.parse_args(argv)
    command = "python scripts/mm_readme.py" + "".join(f" --only {k}" for k in args.only or [])
    for key in args.only or BLOCKS:
        t0 = time.perf_counter()
        body = build(key)
        wall = time.perf_counter() - t0
        text = f"{body}\n\n(written by `{command}`; this block took {wall:.0f} s)"
        print(f"--- mm:{key}\n{text}\n", flush=True)
        if not args.dry_run:
            replace_block(f"mm:{key}", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
