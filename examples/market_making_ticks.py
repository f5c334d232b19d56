"""Avellaneda-Stoikov market making on the shipped tick sample (Binance BTCUSDT trades and
best bid/offer), through the event-driven fill-model broker (latency, queue position).

    python examples/market_making_ticks.py             # the first 10,000 events
    python examples/market_making_ticks.py --all       # the whole sample (about a minute)

The same as `s4trade backtest --strategy market-making --data binance:BTCUSDT:trades`.
Prints the PnL split into spread capture, inventory PnL and fees, and writes
mm_metrics.json and mm_inventory.png into runs/examples/market_making/.
"""

import matplotlib

matplotlib.use("Agg")

import sys

from s4_strategies import run_market_making

result = run_market_making(
    "ticks",                           # feeds.TickData over trades + BBO
    dataset="binance:BTCUSDT:trades",  # the spot sample; binance-usdm:BTCUSDT:trades: USD-M
    max_events=None if "--all" in sys.argv else 10_000,
    latency="cloud",                   # feed 5 ms, order entry and cancel 10 ms
    queue="prob",                      # hftbacktest's probabilistic queue position
    gamma=3e-3,                        # risk aversion (a strategy param; larger: wider quotes)
    out="runs/examples/market_making",
)
print(result["table"])
print(f"reconciles with the broker's value change: {result['reconciles']}")
