"""The market maker's cross-check against hftbacktest: the same events, quoting rule, latency
and fees in ``MarketMakingBroker`` and in hftbacktest, side by side.

Ours: backtrader with ``feeds.ticks.TickData``, ``MarketMakingBroker(latency=, queue=)``,
``MakerTakerCommInfo`` and ``ConstantSpreadStrategy``, PnL split by
``MarketMakingAnalyzer``. Reference: ``s4_strategies.market_making.hftbacktest_ref`` (the
same rule in hftbacktest on the same merged events; its module doc says what had to be
adapted, and its "Agreement" section the measured band and why it is not zero). Latency X ms
is entry = cancel = X; ours runs with ``cancel_in_flight=False`` (hftbacktest cannot cancel
an order before it is acknowledged). Used by ``scripts/crosscheck_hftbacktest.py``,
``scripts/mm_readme.py`` and the tests; here rather than in ``market_making`` because it
needs the feeds, the analyzer and the strategy.
"""

from __future__ import annotations

import math

import numpy as np

from s4_strategies.fees import BYBIT_MAKER, BYBIT_TAKER

DATASET = "binance-usdm:BTCUSDT"
RULE = dict(half_spread=0.5, skew=0.1, lot=0.01, max_inventory=10.0, tick=0.1)
ROWS = ("fills_bid", "fills_ask", "volume_bid", "volume_ask", "quotes_bid", "quotes_ask",
        "quotes_rejected", "fill_ratio", "spread_pnl", "inventory_pnl", "fees", "total_pnl",
        "final_position", "median_fill_delay")


def run_ours(frame, *, latency, queue: str = "prob", queue_power: float = 3.0,
             partial: bool = True, maker: float = BYBIT_MAKER, taker: float = BYBIT_TAKER,
             cash: float = 1_000_000.0, cancel_in_flight: bool = False,
             lot_size: float = 0.001, **rule) -> dict:
    """``ConstantSpreadStrategy`` (``cancel_in_flight=False`` by default, as hftbacktest must)
    on ``frame`` through ``MarketMakingBroker``: the
    ``MarketMakingAnalyzer`` total plus ``final_position`` (contracts),
    ``median_fill_delay`` (seconds, placement → each execution) and the broker's
    ``fill_log``. ``rule``: the strategy's params (:data:`RULE` by default); ``lot_size``:
    the exchange's size step, partial fills come in whole steps of it."""
    import backtrader as bt

    from analyzers.market_making import MarketMakingAnalyzer
    from feeds.ticks import TickData
    from s4_strategies.fees import MakerTakerCommInfo
    from s4_strategies.market_making.broker import MarketMakingBroker
    from s4_strategies.strategies.constant_spread import ConstantSpreadStrategy

    cerebro = bt.Cerebro(stdstats=False)
    broker = MarketMakingBroker(fill_model="trade_through", queue=queue, queue_power=queue_power,
                                latency=latency, partial=partial, size_step=lot_size)
    broker.setcash(cash)
    broker.addcommissioninfo(MakerTakerCommInfo(maker=maker, taker=taker))
    cerebro.broker = broker
    cerebro.adddata(TickData(dataname=frame), name="ticks")
    cerebro.addstrategy(ConstantSpreadStrategy, cancel_in_flight=cancel_in_flight,
                        **{**RULE, **rule})
    cerebro.addanalyzer(MarketMakingAnalyzer, _name="mm")
    strat = cerebro.run()[0]
    out = dict(strat.analyzers.mm.get_analysis()["total"])
    log = list(strat.broker.fill_log)
    delays = [f["t"] - f["placed"] for f in log]
    out["final_position"] = strat.getposition(strat.data0).size
    out["median_fill_delay"] = float(np.median(delays)) if delays else math.nan
    out["fill_log"] = log
    return out


def compare(frame, *, latency, queue: str = "prob", queue_power: float = 3.0,
            partial: bool = True, maker: float = BYBIT_MAKER, taker: float = BYBIT_TAKER,
            **rule) -> tuple[dict, dict]:
    """Run both engines on ``frame`` with the same rule (:data:`RULE` updated by ``rule``),
    latency (anything ``parse_latency`` takes, entry = cancel), queue model and fees:
    ``(ours, hftbacktest)``, dicts with the keys of :data:`ROWS` and a ``fill_log``."""
    from s4_strategies.market_making.hftbacktest_ref import run_hftbacktest
    from s4_strategies.market_making.latency import parse_latency

    latency = parse_latency(latency)
    rule = {**RULE, **rule}
    common = dict(latency=latency, queue=queue, queue_power=queue_power, partial=partial,
                  maker=maker, taker=taker)
    ours = run_ours(frame, **common, **rule)
    ref = run_hftbacktest(frame, **common, **rule)
    return ours, ref


def format_table(ours: dict, ref: dict, title: str = "") -> str:
    """A markdown table of :data:`ROWS`: ours, hftbacktest and ours/hftbacktest."""
    lines = [f"**{title}**", ""] if title else []
    lines += ["| metric | ours | hftbacktest | ours/hbt |", "|---|---:|---:|---:|"]
    for key in ROWS:
        a, b = ours.get(key, math.nan), ref.get(key, math.nan)
        a = math.nan if a is None else a
        b = math.nan if b is None else b
        ratio = a / b if b not in (0, 0.0) and not math.isnan(b) else math.nan
        fmt = "{:,.0f}" if isinstance(a, int) and isinstance(b, int) else "{:,.4g}"
        lines.append(f"| {key} | {fmt.format(a)} | {fmt.format(b)} | {ratio:.3g} |")
    return "\n".join(lines)


def crosscheck_table(latencies_ms=(0.0, 1.0, 10.0, 50.0), queues=("prob", "risk_averse"),
                     dataset: str = DATASET, **rule) -> str:
    """One markdown row per latency and queue model on the whole of ``dataset``: fills,
    quotes, fill ratio and the PnL parts as ours / hftbacktest."""
    from feeds.ticks import load_ticks
    from s4_strategies.market_making.latency import Latency

    frame = load_ticks(dataset)
    rule = {**RULE, **rule}
    lines = [f"The constant-spread rule ({', '.join(f'{k} {v:g}' for k, v in rule.items())}; "
             f"Bybit fees) on {dataset} ({len(frame):,} events) in both engines, ours / "
             "hftbacktest (ratio):", "",
             "| entry = cancel, queue | fills | quotes | fill ratio | spread PnL | "
             "inventory PnL | fees | total PnL |", "|---|---|---|---|---|---|---|---|"]
    for ms in latencies_ms:
        for queue in queues:
            ours, ref = compare(frame, latency=Latency(0.0, ms / 1e3, ms / 1e3), queue=queue,
                                **rule)
            fills = [r["fills_bid"] + r["fills_ask"] for r in (ours, ref)]
            quotes = [r["quotes_bid"] + r["quotes_ask"] for r in (ours, ref)]
            cells = [f"{fills[0]} / {fills[1]} ({fills[0] / max(fills[1], 1):.3f})",
                     f"{quotes[0]} / {quotes[1]}",
                     f"{ours['fill_ratio']:.4f} / {ref['fill_ratio']:.4f}"]
            cells += [f"{ours[k]:,.2f} / {ref[k]:,.2f}"
                      for k in ("spread_pnl", "inventory_pnl", "fees", "total_pnl")]
            lines.append(f"| {ms:g} ms, {queue} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
