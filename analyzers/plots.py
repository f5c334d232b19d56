"""Pictures that need no screen: an equity and drawdown PNG, and ``cerebro.plot()`` to a file.

::

    plot_equity_drawdown(res["returns"], "runs/x/equity_drawdown.png", benchmark=res["benchmark"])
    save_cerebro_plot(cerebro, "runs/x/cerebro.png")      # after cerebro.run()
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["drawdown_series", "plot_equity_drawdown", "save_cerebro_plot"]


def drawdown_series(returns: pd.Series) -> pd.Series:
    """Drawdown (≤ 0) of the wealth ``cumprod(1 + r)``, measured from a starting wealth of 1."""
    wealth = (1.0 + pd.Series(returns, dtype="float64").fillna(0.0)).cumprod()
    peak = np.maximum(wealth.cummax(), 1.0)
    return wealth / peak - 1.0


def plot_equity_drawdown(
    returns: pd.Series,
    path,
    benchmark: pd.Series | None = None,
    title: str | None = None,
    dpi: int = 110,
) -> Path:
    """Write a two-panel PNG: growth of 1 (strategy and optional benchmark), drawdown below.

    Drawn on a bare ``matplotlib.figure.Figure`` (no pyplot), so it works whatever backend
    pyplot has been switched to, with no display.
    """
    from matplotlib.figure import Figure

    r = pd.Series(returns, dtype="float64").fillna(0.0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(10, 6), dpi=dpi)
    ax_eq, ax_dd = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    x = r.index
    ax_eq.plot(x, (1.0 + r).cumprod(), color="#1f77b4", lw=1.3, label=r.name or "Strategy")
    if benchmark is not None:
        b = pd.Series(benchmark, dtype="float64").reindex(r.index).fillna(0.0)
        ax_eq.plot(x, (1.0 + b).cumprod(), color="#7f7f7f", lw=1.0, alpha=0.8,
                   label=benchmark.name or "Benchmark")
    ax_eq.axhline(1.0, color="black", lw=0.6, alpha=0.5)
    ax_eq.set_ylabel("growth of 1")
    ax_eq.legend(loc="upper left", frameon=False)
    ax_eq.grid(alpha=0.3)
    dd = drawdown_series(r) * 100.0
    ax_dd.fill_between(x, dd.to_numpy(), 0.0, color="#d62728", alpha=0.35, lw=0)
    ax_dd.plot(x, dd, color="#d62728", lw=0.8)
    ax_dd.set_ylabel("drawdown %")
    ax_dd.grid(alpha=0.3)
    if title:
        ax_eq.set_title(title)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return path


def save_cerebro_plot(cerebro, path, figsize=(16, 9), dpi: int = 100, **plot_kwargs) -> list[Path]:
    """Save ``cerebro.plot()`` (after ``cerebro.run()``) as image files, with no display.

    ``backtrader.plot`` calls ``matplotlib.use("TkAgg")`` when it is imported, which breaks a
    headless machine; it is imported here first, then pyplot is switched to Agg, then
    ``cerebro.plot(iplot=False)`` runs. The first figure goes to ``path``, any others (several
    strategies, ``numfigs``) to ``<stem>_<i>_<j><suffix>``, each ``figsize`` inches at ``dpi``.
    Other keyword arguments go to ``cerebro.plot`` (``style="candle"``, ``volume=False``, ...).
    Returns the paths written.
    """
    import backtrader.plot  # noqa: F401 - import for its side effect before switching to Agg
    import matplotlib
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    matplotlib.use("Agg", force=True)  # stays on Agg: switching back could mean TkAgg
    plt.switch_backend("Agg")
    written = []
    with warnings.catch_warnings():
        # plotter.show() on Agg: "FigureCanvasAgg is non-interactive, and thus cannot be shown"
        warnings.filterwarnings("ignore", message=".*non-interactive.*", category=UserWarning)
        figures = cerebro.plot(iplot=False, **plot_kwargs)
    for i, figs in enumerate(figures or []):
        for j, fig in enumerate(figs):
            out = path if (i, j) == (0, 0) else path.with_name(f"{path.stem}_{i}_{j}{path.suffix}")
            if figsize:
                fig.set_size_inches(*figsize)
            fig.savefig(out, dpi=dpi)
            written.append(out)
            plt.close(fig)
    return written
