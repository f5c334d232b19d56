"""A trial's forecasts scored on its fold: the cost-aware band chosen on the validation bars
and traded over the test block from flat, the validation and test scores of its row, and
its test-bar predictions (what the store keeps and stitching reads)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...features import make_labels
from .. import skill, skill_report
from ..decision import count_trades, net_returns, select_rule
from ..funding import funding_per_bar
from .overfit import sharpe
from .spec import ResearchSpec
from .walkforward import Fold


def _predictions(f: dict, index, rows: slice, n_classes: int) -> pd.DataFrame:
    cols = {"bar": np.arange(rows.start, rows.stop)}
    for c in range(n_classes):
        cols[f"p{c}"] = f["probs"][rows, c]
    for key in ("ret_1", "ret_5", "move", "log_vol", "har_log_vol", "ewma_log_vol",
                "trailing_log_vol", "majority"):
        if key in f:
            cols[key] = np.asarray(f[key], dtype=np.float64)[rows]
    if "prior_probs" in f:
        for c in range(n_classes):
            cols[f"prior_p{c}"] = f["prior_probs"][rows, c]
    return pd.DataFrame(cols, index=index[rows])


def _score(f: dict, truth: dict, rows: slice) -> dict:
    p = f["probs"][rows]
    out = {"accuracy": skill.accuracy(np.argmax(p, axis=1).astype(float), truth["signal"][rows]),
           "log_loss": skill.log_loss(p, truth["signal"][rows]),
           "vol_corr": skill.corr(f["log_vol"][rows], truth["log_vol"][rows])}
    for h in skill_report.IC_HORIZONS:
        out[f"ic_{h}"] = skill.spearman_ic(f[f"ret_{h}"][rows], truth[f"fwd_{h}"][rows])
    return out


def evaluate(row: dict, spec: ResearchSpec, df: pd.DataFrame, fold: Fold, f: dict
             ) -> pd.DataFrame:
    """Score forecasts ``f`` (every bar of ``df.iloc[:fold.test[1]]``) on the fold: the band
    chosen on validation, traded over the test block from flat; the validation and test
    scores go into ``row``. Returns the test-bar predictions."""
    from analyzers.metrics import infer_periods_per_year

    lspec = spec.label_spec
    data = df.iloc[: fold.test[1]]
    truth = skill_report.targets(make_labels(df, lspec), lspec)  # scoring only
    truth = {k: v[: fold.test[1]] for k, v in truth.items()}
    val, test = slice(*fold.val), slice(*fold.test)
    close = data["close"].to_numpy()
    ppy = infer_periods_per_year(df.index)
    funding = funding_per_bar(data.index, spec.funding_rate)
    rule, table = select_rule(f["move"][val], close[val], spec.fee, funding=funding[val],
                              periods_per_year=ppy, min_trades=spec.min_trades)
    pos = rule.positions(f["move"][test])  # (n_test,)
    net = net_returns(close[test], pos, spec.fee, funding[test])[0]
    preds = _predictions(f, data.index, test, lspec.n_classes)
    preds["position"] = pos
    preds["net_return"] = net
    v = _score(f, truth, val)
    row.update({f"val_{k}": x for k, x in v.items()})
    chosen = table.get("chosen")
    row["val_net_sharpe"] = chosen["sharpe"] if chosen else float("nan")
    row.update({f"test_{k}": x for k, x in _score(f, truth, test).items()})
    row.update({"test_sharpe_bar": sharpe(net),
                "test_net_sharpe": sharpe(net) * np.sqrt(ppy),
                "band_enter": rule.enter, "band_exit": rule.exit,
                "test_trades": count_trades(pos)})
    return preds
