"""The documentation's pictures, written into docs/images/ (each page says which made it).

    python scripts/docs_pictures.py                 # all three (a few minutes on two cores)
    python scripts/docs_pictures.py --only equity   # or: market-making, research

- ``equity_vs_buyhold.png``: the shipped S4D checkpoint with ``S4DirectionalStrategy`` on
  BTCUSDT hourly bars, 2023-01-02 .. 2024-12-31 (out of sample: the first bar after its
  validation data and purge), Bybit's taker fee on every fill, against holding BTCUSDT.
- ``mm_quotes_inventory.png``: ``AvellanedaStoikovStrategy`` (the tick preset, cloud latency,
  probabilistic queue) on the first events of the embedded spot tick sample: the mid, the
  strategy's open bid and ask quotes, the fills, and the inventory.
- ``research_folds.png``: each model's net Sharpe on each fold's test block, per asset, from
  the quick equities research spec (``scripts/research/equities_daily_quick.yaml``, run
  serially into a temporary folder; tiny models and two folds: a smoke run, not a study).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "images"
TICK_EVENTS = 12_000


def equity(out: Path) -> Path:
    """The shipped model's out-of-sample backtest against buy-and-hold."""
    from datetime import datetime

    import backtrader as bt

    import analyzers
    import feeds
    from analyzers.plots import plot_equity_drawdown
    from s4_strategies import S4DirectionalStrategy, default_checkpoint, load_model

    model = load_model(default_checkpoint())
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.setcash(100_000)
    cerebro.adddata(feeds.EmbeddedData(name="bybit:BTCUSDT:60", fromdate=datetime(2023, 1, 2),
                                       todate=datetime(2024, 12, 31, 23)))
    cerebro.addstrategy(S4DirectionalStrategy, model=model)
    analyzers.add_all(cerebro, benchmark="buyhold")
    strat = cerebro.run()[0]
    res = strat.analyzers.quantstats.get_analysis()
    m = res["metrics"]
    title = (f"The shipped S4D on BTCUSDT 1h, 2023-2024 out of sample, after Bybit's taker fee\n"
             f"Sharpe {m['sharpe']:.2f}, max drawdown {m['max_drawdown']:.0%}; grey: buying "
             "and holding BTCUSDT")
    return plot_equity_drawdown(res["returns"], out / "equity_vs_buyhold.png",
                                benchmark=res["benchmark"], title=title)


def _quote_recorder():
    import backtrader as bt

    class Quotes(bt.Analyzer):
        """The strategy's best open bid and ask after each event."""

        def start(self):
            self.rows = []

        def next(self):
            bids = [o.created.price for o in self.strategy.broker.get_orders_open()
                    if o.isbuy() and o.created.price]
            asks = [o.created.price for o in self.strategy.broker.get_orders_open()
                    if o.issell() and o.created.price]
            self.rows.append((self.data.datetime.datetime(0), max(bids, default=float("nan")),
                              min(asks, default=float("nan"))))

    return Quotes


def market_maker(out: Path) -> Path:
    """Mid, quotes, fills and inventory of the market maker on the tick sample."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from s4_strategies.apps.market_making import build_market_making

    setup = build_market_making("ticks", max_events=TICK_EVENTS, latency="cloud", queue="prob")
    setup.cerebro.addanalyzer(_quote_recorder(), _name="quotes")
    strat = setup.cerebro.run()[0]
    mm = strat.analyzers.mm
    series, fills = mm.series(), mm.fills()
    quotes = pd.DataFrame(strat.analyzers.quotes.rows, columns=["time", "bid", "ask"])
    quotes = quotes.set_index(pd.DatetimeIndex(quotes.pop("time")).tz_localize("UTC"))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True,
                                      gridspec_kw={"height_ratios": [2.2, 1]})
    top.plot(series.index, series["mid"], lw=0.8, color="0.25", label="mid")
    top.step(quotes.index, quotes["bid"], where="post", lw=0.7, color="tab:green", alpha=0.7,
             label="our bid quote")
    top.step(quotes.index, quotes["ask"], where="post", lw=0.7, color="tab:red", alpha=0.7,
             label="our ask quote")
    if len(fills):
        buys, sells = fills[fills["side"] > 0], fills[fills["side"] < 0]
        top.scatter(buys.index, buys["price"], s=22, marker="^", color="darkgreen", zorder=3,
                    label="bought (fill)")
        top.scatter(sells.index, sells["price"], s=22, marker="v", color="darkred", zorder=3,
                    label="sold (fill)")
    top.set_ylabel("price (USDT)")
    top.legend(loc="lower left", fontsize=8, ncol=3)
    total = mm.get_analysis()["total"]
    top.set_title(f"Avellaneda-Stoikov on Binance BTCUSDT spot ticks, first {TICK_EVENTS:,} "
                  f"events: {total['fills_bid']} buys, {total['fills_ask']} sells, total PnL "
                  f"{total['total_pnl']:+.2f} USDT after fees", fontsize=10)
    bottom.step(series.index, series["position"], where="post", lw=1.0, color="tab:blue")
    bottom.axhline(0.0, color="0.5", lw=0.6)
    bottom.set_ylabel("inventory (BTC)")
    bottom.set_xlabel("time (UTC), 2024-08-08/09")
    fig.autofmt_xdate()
    fig.tight_layout()
    path = out / "mm_quotes_inventory.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def research_folds(out: Path, research_out=None) -> Path:
    """Per-fold net Sharpe of each model, per asset, from the quick equities spec
    (``research_out``: the run's folder; a rerun there resumes, so a finished run is only
    read; default: a temporary folder)."""
    import matplotlib.pyplot as plt
    import numpy as np

    from s4_strategies.apps.research import run_research

    spec = ROOT / "scripts" / "research" / "equities_daily_quick.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        result = run_research(spec, research_out or tmp, serial=True, log=lambda *_: None)
    reports = result["reports"]
    fig, axes = plt.subplots(1, len(reports), figsize=(11, 3.8), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, (ds, rep) in zip(axes, reports.items()):
        models = list(rep["chosen"])
        labels = [f"fold {f['fold']}\n{f['test'][0][:7]} .. {f['test'][1][:7]}"
                  for f in rep["folds"]]
        width = 0.8 / max(len(models), 1)
        for i, model in enumerate(models):
            values = np.array([f["test_net_sharpe"] for f in rep["chosen"][model]])
            bars = ax.bar(np.arange(len(values)) + i * width, values, width, label=model)
            idle = ~(np.abs(values) > 1e-12)  # no trade in the block: Sharpe 0 (or none)
            ax.scatter((np.arange(len(values)) + i * width)[idle], np.zeros(idle.sum()),
                       marker="_", s=120, color=bars.patches[0].get_facecolor(), zorder=3)
        ax.axhline(0.0, color="0.4", lw=0.6)
        ax.set_xticks(np.arange(len(labels)) + 0.4 - width / 2, labels, fontsize=8)
        ax.set_title(ds, fontsize=10)
    axes[0].set_ylabel("net Sharpe of the test block")
    axes[0].legend(fontsize=8)
    fig.suptitle("Quick equities research spec, each fold's test block (tiny models, mean over "
                 "seeds, after fees; a dash at 0: no trade): a smoke run, not a study",
                 fontsize=10)
    fig.tight_layout()
    path = out / "research_folds.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


PICTURES = {"equity": equity, "market-making": market_maker, "research": research_folds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(PICTURES), action="append",
                        help="draw only this picture (repeatable; default: all)")
    parser.add_argument("--out", default=str(OUT), help="folder for the PNGs")
    parser.add_argument("--research-out", default=None, metavar="DIR",
                        help="folder of the research run (resumed; default: a temporary one)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.only or list(PICTURES):
        start = time.perf_counter()
        extra = {"research_out": args.research_out} if name == "research" else {}
        path = PICTURES[name](out, **extra)
        print(f"{path} ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
