"""``s4trade live``: a strategy on Bybit's live candles, in shadow mode or trading.

::

    s4trade live --strategy directional --data bybit:BTCUSDT:60            # shadow (default)
    s4trade live --strategy directional --data bybit:BTCUSDT:60 --testnet  # keys from env
    s4trade live --strategy multi-asset --data bybit:BTCUSDT:60,bybit:ETHUSDT:60  # shadow

The same strategy, indicator and checkpoint as the backtest. The feed backfills history
(enough for the model's warm-up), then streams closed candles; the strategy places orders
only on live bars (backfilled bars advance the model and the strategy's bookkeeping, never
an order). Around it: the kill switch (``--max-position``, ``--max-orders``,
``--max-daily-loss``, ``--stale-bars``), the state saved after every closed bar and restored
at start (``OUT/state.json``), the drift monitor (its warnings printed), and the order
journal (``OUT/journal.jsonl``, whichever the broker; ``s4trade shadow-report`` reads it).
Each closed live bar prints its prediction, orders and fills.
Ctrl-C stops cleanly: open orders are cancelled (or kept, or positions flattened:
``--on-exit``) and the state saved. The multi-asset strategy (several symbols, one model
state, one state file) is built by :mod:`.live_multi`.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
from pathlib import Path

import backtrader as bt

from ..live.gate import is_live
from .live_parts import OnExit, live_source, say_resumed  # noqa: F401 (live_source: public here too)

logger = logging.getLogger(__name__)

MODES = ("shadow", "testnet", "demo", "mainnet")
ON_EXIT = ("cancel", "keep", "flatten")
LIVE_STRATEGIES = ("directional", "multi-asset")


class LiveLog(bt.Analyzer):
    """Prints each closed live bar (prediction, position, value) and every order event."""

    params = dict(printer=print, indicator="s4")

    def start(self):
        self.bars = 0
        self._went_live = False
        say_resumed(self)

    def next(self):
        d = self.strategy.data
        if not is_live([d]):
            return
        if not self._went_live:
            self._went_live = True
            self.p.printer(f"live from {d.datetime.datetime(0):%Y-%m-%d %H:%M} UTC "
                           f"({len(d) - 1} bars of history before it)")
        self.bars += 1
        ind = getattr(self.strategy, self.p.indicator, None)
        pred = ""
        if ind is not None:
            sig, conf = ind.signal[0], ind.confidence[0]
            if sig == sig:
                pred = (f" | signal {sig:+.0f} conf {conf:.2f} pred_return "
                        f"{ind.pred_return[0]:+.4%} pred_vol {ind.pred_vol[0]:.3%}")
            else:
                pred = " | warming up"
        pos = self.strategy.broker.getposition(d)
        self.p.printer(f"{d.datetime.datetime(0):%Y-%m-%d %H:%M} {d._name} close "
                       f"{d.close[0]:,.2f}{pred} | position {pos.size:g} value "
                       f"{self.strategy.broker.getvalue():,.2f}")

    def notify_order(self, order):
        ex = order.executed
        fill = f" {ex.size:+g} at {ex.price:,.2f} fee {ex.comm:.4f}" if ex.size else ""
        price = "" if order.exectype == bt.Order.Market else f" @ {order.created.price:,.2f}"
        reason = order.info.get("reject_reason")
        self.p.printer(f"  order #{order.ref} {'buy' if order.isbuy() else 'sell'} "
                       f"{abs(order.created.size):g} {order.getordername()}{price}: "
                       f"{order.getstatusname()}{fill}" + (f" ({reason})" if reason else ""))


def build_live(spec, mode="shadow", *, model=None, out="runs/live", cash=10_000.0, params=None,
               limits=None, on_exit="cancel", backfill=None, session=None, ws_factory=None,
               now=None, qcheck=0.5, printer=print, resume="auto", strategy="directional"):
    """The live Cerebro (not yet run) and what it was built from.

    ``mode``: ``shadow`` (no keys, nothing sent), ``testnet``, ``demo`` or ``mainnet`` (keys
    from ``BYBIT_API_KEY``/``BYBIT_API_SECRET``). ``limits``: the kill switch's params.
    ``session``/``ws_factory``: injected Bybit clients (tests); ``now``: the clock of the
    backfill (tests)."""
    import feeds
    from analyzers.drift import DriftMonitor, reference_from_predictor

    from ..live.gate import live_only
    from ..live.journal import OrderJournal
    from ..live.killswitch import KillSwitch
    from ..live.shadow import ShadowBroker
    from ..live.state import StateSaver
    from ..strategies import S4DirectionalStrategy
    from .backtest import load_predictor

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if on_exit not in ON_EXIT:
        raise ValueError(f"on_exit must be one of {ON_EXIT}, got {on_exit!r}")
    if strategy not in LIVE_STRATEGIES:
        raise ValueError(f"live runs support --strategy {', '.join(LIVE_STRATEGIES)} (market "
                         "making needs a live order book feed, not built yet)")
    if strategy == "multi-asset":
        from .live_multi import build_live_multi

        return build_live_multi(spec, mode, model=model, out=out, cash=cash, params=params,
                                limits=limits, on_exit=on_exit, backfill=backfill,
                                session=session, ws_factory=ws_factory, now=now,
                                qcheck=qcheck, printer=printer, resume=resume)
    src = live_source(spec)
    predictor = load_predictor(model)
    out = Path(out) / src.symbol
    out.mkdir(parents=True, exist_ok=True)
    store = feeds.BybitStore(testnet=mode == "testnet", demo=mode == "demo",
                             category=src.category, session=session, ws_factory=ws_factory)
    if mode != "shadow" and not store.has_credentials:
        raise ValueError(f"--{mode} trades on Bybit: set BYBIT_API_KEY and BYBIT_API_SECRET "
                         f"(keys of a {mode} account), or run --shadow")
    warm = int(predictor.feature_spec.warmup)
    data = store.getdata(src.symbol, interval=src.interval, now=now, qcheck=qcheck,
                         backfill=int(backfill if backfill is not None else max(4 * warm, 500)))
    cerebro = bt.Cerebro(stdstats=False, quicknotify=True)
    cerebro.adddata(data, name=src.symbol)
    if mode == "shadow":
        broker = ShadowBroker(journal=out / "journal.jsonl")
        broker.setcash(float(cash))
    else:  # a restart takes over the orders the run it continues left open
        broker = store.getbroker(stale_orders="adopt")
    cerebro.setbroker(broker)
    cerebro.addstrategy(live_only(S4DirectionalStrategy), model=predictor, **(params or {}))
    cerebro.addanalyzer(OnExit, _name="on_exit", policy=on_exit, printer=printer)
    if mode != "shadow":  # the shadow broker keeps its own
        cerebro.addanalyzer(OrderJournal, _name="journal", path=out / "journal.jsonl")
    cerebro.addanalyzer(StateSaver, _name="state", path=out / "state.json", resume=resume)
    cerebro.addanalyzer(KillSwitch, _name="killswitch", **(limits or {}))
    # Slow volatility features wander with the regime: a long window and a week of bars
    # before judging keep the monitor to real departures (tests/test_drift.py).
    cerebro.addanalyzer(DriftMonitor, _name="drift", indicator="s4", window=2000,
                        min_bars=168, reference=reference_from_predictor(predictor),
                        on_warning=lambda w: printer(f"  drift: {w['message']}"))
    cerebro.addanalyzer(LiveLog, _name="log", printer=printer)
    printer(f"s4trade live: {src.symbol} {src.interval} on Bybit {store.network} "
            f"({'shadow: nothing is sent' if mode == 'shadow' else 'TRADING'}), model "
            f"{predictor.name}, state {out / 'state.json'}")
    return cerebro, {"store": store, "data": data, "broker": broker, "out": out,
                     "predictor": predictor}


def run_live(spec, mode="shadow", *, stop_after=None, printer=print, **kwargs) -> dict:
    """Build and run until Ctrl-C, the kill switch or the feed's end; ``stop_after`` live
    bars (tests). Returns a summary."""
    cerebro, ctx = build_live(spec, mode, printer=printer, **kwargs)
    if stop_after is not None:
        class _Stop(bt.Analyzer):
            def next(self):
                if self.strategy.analyzers.log.bars >= stop_after:
                    self.strategy.env.runstop()

        cerebro.addanalyzer(_Stop)
    stopping = threading.Event()

    def on_sigint(signum, frame):
        if stopping.is_set():
            raise KeyboardInterrupt
        stopping.set()
        printer("stopping (Ctrl-C again to abort at once) ...")
        cerebro.runstop()

    old = None
    if threading.current_thread() is threading.main_thread():
        old = signal.signal(signal.SIGINT, on_sigint)
    try:
        strat = cerebro.run()[0]
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
    an = strat.analyzers
    ks = an.killswitch.get_analysis()
    if "datas" in ctx:  # the multi-asset run
        from .live_multi import summary_of

        summary = summary_of(strat, ctx)
        printer(f"stopped after {summary['bars']} live bar times; positions "
                + ", ".join(f"{a} {v:g}" for a, v in summary["position"].items())
                + f", value {strat.broker.getvalue():,.2f}"
                + (f"; {ks['tripped']['message']}" if ks.get("tripped") else ""))
        return summary
    summary = {"bars": an.log.bars, "position": strat.broker.getposition(strat.data).size,
               "value": strat.broker.getvalue(), "killswitch": ks.get("tripped"),
               "drift_warnings": len(an.drift.get_analysis().get("warnings", [])),
               "state": str(ctx["out"] / "state.json"), "data_error": ctx["data"].error}
    if isinstance(summary["value"], float) and not math.isfinite(summary["value"]):
        summary["value"] = None
    printer(f"stopped after {summary['bars']} live bars; position {summary['position']:g}, "
            f"value {strat.broker.getvalue():,.2f}"
            + (f"; {ks['tripped']['message']}" if ks.get("tripped") else ""))
    return summary
