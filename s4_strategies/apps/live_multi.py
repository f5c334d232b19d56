"""``s4trade live --strategy multi-asset``: one shared-encoder model on several Bybit symbols,
in shadow mode.

::

    s4trade live --strategy multi-asset \\
        --data bybit:BTCUSDT:60,bybit:ETHUSDT:60,bybit:SOLUSDT:60      # shadow (default)

One live feed per symbol (history first, then closed candles), one strategy
(``S4MultiAssetStrategy``) reading them all through the model's one recurrent state
(:class:`~s4_strategies.indicators.multi.SharedStream`: a bar time is stepped once every
symbol has shown its candle of that time), one ``ShadowBroker`` account, one journal and ONE
state file for the shared stream (``OUT/BTCUSDT-ETHUSDT-SOLUSDT/state.json``), saved after
every bar time and restored at start, with the kill switch around it. Without ``--data``
the symbols are the checkpoint's own. Each live bar time prints the model's weights and
closes; orders and fills print as they happen. Trading the strategy on an exchange
(testnet, demo, mainnet) is not built yet: those modes are refused.
"""

from __future__ import annotations

from pathlib import Path

import backtrader as bt

from ..live.gate import is_live
from .live_parts import say_resumed
from .sources import SourceError


class MultiLiveLog(bt.Analyzer):
    """Prints each live bar time the model stepped (every asset's close and weight, the
    account's value) and every order event."""

    params = dict(printer=print)

    def start(self):
        self.bars = 0
        self._steps = None
        self._went_live = False
        say_resumed(self)

    def next(self):
        shared = self.strategy.shared
        if shared.steps == self._steps or shared.time is None:
            return
        self._steps = shared.steps
        if not is_live(self.strategy.datas):
            return
        when = bt.num2date(shared.time)
        if not self._went_live:
            self._went_live = True
            self.p.printer(f"live from {when:%Y-%m-%d %H:%M} UTC ({shared.steps - 1} bar "
                           "times of history before it)")
        self.bars += 1
        parts = []
        for a, d in self.strategy.assets.items():
            out, bar = shared.latest.get(a), shared.bars.get(a)
            close = f"{bar[3]:,.2f}" if bar is not None else "no bar"
            weight = f"weight {out['weight']:.3f}" if out is not None else "warming up"
            pos = self.strategy.broker.getposition(d).size
            parts.append(f"{a} {close} {weight} position {pos:g}")
        self.p.printer(f"{when:%Y-%m-%d %H:%M} " + " | ".join(parts)
                       + f" | value {self.strategy.broker.getvalue():,.2f}")

    def notify_order(self, order):
        ex = order.executed
        fill = f" {ex.size:+g} at {ex.price:,.2f} fee {ex.comm:.4f}" if ex.size else ""
        self.p.printer(f"  order #{order.ref} {order.data._name} "
                       f"{'buy' if order.isbuy() else 'sell'} {abs(order.created.size):g} "
                       f"{order.getordername()}: {order.getstatusname()}{fill}")


def build_live_multi(spec, mode="shadow", *, model=None, out="runs/live", cash=10_000.0,
                     params=None, limits=None, on_exit="cancel", backfill=None, session=None,
                     ws_factory=None, now=None, qcheck=0.5, printer=print, resume="auto"):
    """The live Cerebro of the multi-asset strategy (not yet run) and what it was built from
    (``build_live``'s arguments; ``spec``: a comma list of ``bybit:SYMBOL:INTERVAL``, or
    None for the checkpoint's own)."""
    import feeds

    from ..live.gate import live_only
    from ..live.killswitch import KillSwitch
    from ..live.shadow import ShadowBroker
    from ..live.state import StateSaver
    from ..strategies.multi_asset import S4MultiAssetStrategy
    from .backtest import data_names, load_predictor, trained_data
    from .live_parts import OnExit, live_source

    if mode != "shadow":
        raise ValueError("the multi-asset strategy runs in shadow mode (the default): trading "
                         f"it with --{mode} is not built yet")
    predictor = load_predictor(model, "multi-asset")
    specs = [s.strip() for s in str(spec).split(",") if s.strip()] if spec else \
        trained_data(predictor)
    sources = [live_source(s) for s in specs]
    if len({(s.interval, s.category) for s in sources}) != 1:
        raise SourceError(f"the symbols of one multi-asset run share one interval and "
                          f"category, got {', '.join(specs)}")
    names = data_names("multi-asset", predictor, sources)
    out = Path(out) / "-".join(s.symbol for s in sources)
    out.mkdir(parents=True, exist_ok=True)
    src0 = sources[0]
    store = feeds.BybitStore(testnet=False, category=src0.category, session=session,
                             ws_factory=ws_factory)
    warm = int(predictor.feature_spec.warmup)
    n_back = int(backfill if backfill is not None else max(4 * warm, 500))
    cerebro = bt.Cerebro(stdstats=False, quicknotify=True)
    datas = []
    for src, name in zip(sources, names):
        data = store.getdata(src.symbol, interval=src.interval, now=now, qcheck=qcheck,
                             backfill=n_back)
        cerebro.adddata(data, name=name)
        datas.append(data)
    broker = ShadowBroker(journal=out / "journal.jsonl")
    broker.setcash(float(cash))
    cerebro.setbroker(broker)
    cerebro.addstrategy(live_only(S4MultiAssetStrategy), model=predictor, **(params or {}))
    cerebro.addanalyzer(OnExit, _name="on_exit", policy=on_exit, printer=printer)
    cerebro.addanalyzer(StateSaver, _name="state", path=out / "state.json", resume=resume)
    cerebro.addanalyzer(KillSwitch, _name="killswitch", **(limits or {}))
    cerebro.addanalyzer(MultiLiveLog, _name="log", printer=printer)
    printer(f"s4trade live: multi-asset on {', '.join(s.symbol for s in sources)} "
            f"{src0.interval} on Bybit {store.network} (shadow: nothing is sent), model "
            f"{predictor!r}, state {out / 'state.json'}")
    return cerebro, {"store": store, "datas": datas, "data": datas[0], "broker": broker,
                     "out": out, "predictor": predictor}


def summary_of(strat, ctx) -> dict:
    """``run_live``'s summary of a finished multi-asset run."""
    an = strat.analyzers
    ks = an.killswitch.get_analysis()
    errors = [d.error for d in ctx["datas"] if d.error is not None]
    return {"bars": an.log.bars, "late_bars": strat.shared.late,
            "position": {a: strat.broker.getposition(d).size for a, d in strat.assets.items()},
            "value": strat.broker.getvalue(), "killswitch": ks.get("tripped"),
            "drift_warnings": 0, "state": str(ctx["out"] / "state.json"),
            "data_error": errors[0] if errors else None}
