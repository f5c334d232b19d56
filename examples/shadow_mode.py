"""Shadow mode, the backtrader way: the strategy on Bybit's live hourly candles, its orders
filled as the backtest would fill them, nothing sent to the exchange.

    python examples/shadow_mode.py     # Bybit's public candles: no keys needed; Ctrl-C stops

The feed backfills history (the model's warm-up), then streams closed candles over pybit's
WebSocket. `live_only` keeps the strategy from ordering on the backfilled bars; the
`ShadowBroker` journals every order event; `StateSaver` saves the model's recurrent state
after every bar and restores it at the next start; the `KillSwitch` stops on your limits.
Then compare the shadow run with a backtest of the same bars, fill for fill:

    s4trade shadow-report --journal runs/examples/shadow/journal.jsonl --data bybit:BTCUSDT:60

`main()` takes the Bybit clients as arguments (`session`: pybit's HTTP, `ws_factory`: its
WebSocket), so a test runs this file against recorded candles.
"""

from pathlib import Path

import backtrader as bt

import feeds
from s4_strategies import S4DirectionalStrategy, default_checkpoint
from s4_strategies.live import KillSwitch, ShadowBroker, StateSaver, live_only
from s4_strategies.live.gate import is_live

OUT = Path("runs/examples/shadow")


class PrintLiveBars(bt.Analyzer):
    """One line per closed live candle: the model's forecast, the position, the value."""

    def next(self):
        if is_live(self.datas):
            s4, d = self.strategy.s4, self.data
            print(f"{d.datetime.datetime(0):%Y-%m-%d %H:%M} close {d.close[0]:,.1f} | "
                  f"signal {s4.signal[0]:+.0f} conf {s4.confidence[0]:.2f} | position "
                  f"{self.strategy.position.size:g} value {self.strategy.broker.getvalue():,.2f}")


class StopAfter(bt.Analyzer):
    params = dict(bars=None)

    def start(self):
        self.seen = 0

    def next(self):
        self.seen += is_live(self.datas)
        if self.p.bars is not None and self.seen >= self.p.bars:
            self.strategy.env.runstop()


def main(session=None, ws_factory=None, now=None, backfill=800, stop_after=None, qcheck=0.5,
         out=OUT):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = feeds.BybitStore(testnet=False, session=session, ws_factory=ws_factory)  # mainnet data
    data = store.getdata("BTCUSDT", interval="60", backfill=backfill, now=now, qcheck=qcheck)
    cerebro = bt.Cerebro(stdstats=False, quicknotify=True)
    cerebro.adddata(data, name="BTCUSDT")
    broker = ShadowBroker(journal=out / "journal.jsonl")  # backtrader's fills on live bars
    broker.setcash(10_000)
    cerebro.setbroker(broker)
    cerebro.addstrategy(live_only(S4DirectionalStrategy), model=default_checkpoint())
    cerebro.addanalyzer(StateSaver, path=out / "state.json")  # resume after a restart
    cerebro.addanalyzer(KillSwitch, max_daily_loss=500, stale_intervals=3)
    cerebro.addanalyzer(PrintLiveBars)
    cerebro.addanalyzer(StopAfter, bars=stop_after)
    strat = cerebro.run()[0]
    print(f"stopped; position {strat.position.size:g}, value {broker.getvalue():,.2f}; "
          f"journal {out / 'journal.jsonl'}")
    return strat


if __name__ == "__main__":
    main()
