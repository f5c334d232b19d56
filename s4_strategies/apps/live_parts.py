"""The pieces both live runners use (:mod:`.live`, :mod:`.live_multi`): reading ``--data``
as a Bybit source, and what happens to orders and positions when a run stops."""

from __future__ import annotations

import backtrader as bt

from .sources import SourceError, parse_source


def live_source(spec: str):
    """``bybit:SYMBOL:INTERVAL[:category]`` as a Source (live runs read Bybit only)."""
    src = parse_source(spec)
    if src.kind == "embedded" and str(spec).startswith("bybit:"):
        parts = str(spec).split(":")
        src = parse_source(":".join(parts) + ("" if len(parts) > 3 else ":linear"))
    if src.kind != "bybit":
        raise SourceError(f"live runs read Bybit: --data bybit:SYMBOL:INTERVAL[:category], "
                          f"got {spec!r}")
    return src



class OnExit(bt.Analyzer):
    """At the end of the run (Ctrl-C, kill switch, feed end): ``cancel`` open orders
    (default), ``keep`` them, or ``flatten`` (cancel, then close every position).

    Added first, so that it stops first: what the exchange reports meanwhile (a fill that
    beat the cancel, the cancels themselves) is drained from the broker and shown to the
    other analyzers (the journal, the log) before they close. The strategy has stopped and
    is not told, so it cannot answer with new orders."""

    params = dict(policy="cancel", printer=print)

    def stop(self):
        broker = self.strategy.broker
        self._deliver(broker)
        if self.p.policy != "keep":
            orders = [o for o in broker.get_orders_open() if o.alive()]
            for o in orders:
                broker.cancel(o)
            if orders:
                self.p.printer(f"cancelled {len(orders)} open order(s)")
            if self.p.policy == "flatten":
                for d in self.strategy.datas:
                    if broker.getposition(d).size:
                        self.strategy.close(data=d)
                        self.p.printer(f"flattening {d._name}")
        self._deliver(broker)

    def _deliver(self, broker) -> None:
        drain = getattr(broker, "drain", None)  # an exchange's broker: apply what came back
        if callable(drain):
            drain()
        while (order := broker.get_notification()) is not None:
            for an in self.strategy.analyzers:
                if an is not self:
                    an._notify_order(order)


def say_resumed(analyzer) -> None:
    """Print whether the run resumed from its saved state (the ``state`` analyzer) and from
    which bar, through ``analyzer.p.printer``: both live printers start this way."""
    saver = getattr(analyzer.strategy.analyzers, "state", None)
    if saver is not None:
        restored = saver.get_analysis()["restored"]
        analyzer.p.printer(f"resuming from the state saved after the bar of {restored}"
                           if restored else "no saved state: starting from the history")
