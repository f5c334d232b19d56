"""What a portfolio held, asset by asset: weights recorded every bar, and their picture.

::

    cerebro.addanalyzer(PositionWeights, _name="weights")
    strat = cerebro.run()[0]
    frame = strat.analyzers.weights.get_analysis()["weights"]   # (bars, datas) DataFrame
    plot_weights(frame, "runs/x/weights.png", title="S4 multi-asset")

The weight of a data on a bar is the value of the position over the portfolio value at
that bar's close::

    w_a,t = size_a,t · close_a,t / value_t

(negative for a short; cash is ``1 − Σ_a w_a``). These are the weights the account held,
drift between rebalances and unfilled orders included, not the targets a strategy asked for.
"""

from __future__ import annotations

from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd

from feeds.bartime import num_to_index

__all__ = ["PositionWeights", "plot_weights"]


class PositionWeights(bt.Analyzer):
    """Every data's share of the portfolio value on every bar (see the module doc).

    ``get_analysis()``: ``{"weights": DataFrame}``, a tz-naive UTC index of the strategy's
    bars and one column per data (its name), 0 before a data starts."""

    def start(self):
        self._names = [d._name or f"data{i}" for i, d in enumerate(self.strategy.datas)]
        self._dt, self._rows = [], []

    def next(self):
        broker = self.strategy.broker
        value = broker.getvalue()
        row = []
        for d in self.strategy.datas:
            size = broker.getposition(d).size
            row.append(size * float(d.close[0]) / value if len(d) and size and value > 0
                       else 0.0)
        self._dt.append(self.strategy.datetime[0])
        self._rows.append(row)

    prenext = next

    def get_analysis(self):
        index = num_to_index(self._dt, utc=False)
        frame = pd.DataFrame(np.asarray(self._rows, dtype="float64").reshape(
            len(self._rows), len(self._names)), index=index, columns=self._names)
        return {"weights": frame[~frame.index.duplicated(keep="last")]}


def plot_weights(weights: pd.DataFrame, path, title: str | None = None, dpi: int = 110) -> Path:
    """A PNG of the weights over time: long weights stacked (cash on top, up to 1), shorts
    stacked below zero. ``weights``: a DataFrame, one column per asset."""
    from matplotlib.figure import Figure

    w = weights.astype("float64").fillna(0.0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(10, 4.5), dpi=dpi)
    ax = fig.subplots()
    longs, shorts = w.clip(lower=0.0), w.clip(upper=0.0)
    colors = [f"C{i}" for i in range(w.shape[1])]
    if len(w):
        ax.stackplot(w.index, longs.T.to_numpy(), labels=list(w.columns), colors=colors,
                     alpha=0.85, lw=0)
        cash = (1.0 - w.sum(axis=1)).clip(lower=0.0)
        ax.fill_between(w.index, longs.sum(axis=1).to_numpy(),
                        (longs.sum(axis=1) + cash).to_numpy(), color="#d9d9d9", lw=0,
                        label="cash")
        if (shorts < 0).any().any():
            ax.stackplot(w.index, shorts.T.to_numpy(), colors=colors, alpha=0.45, lw=0)
    ax.axhline(0.0, color="black", lw=0.6, alpha=0.5)
    ax.set_ylabel("share of portfolio value")
    ax.legend(loc="upper left", frameon=False, ncol=min(6, w.shape[1] + 1), fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(title or "weights held")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return path
