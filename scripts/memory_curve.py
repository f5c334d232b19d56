"""The learning curve behind a memory cell: after every epoch, the next-bar rank IC of the
model's forecasts on the training, validation and test bars of the planted-lag task, as a
fraction of the oracle's IC (docs/results/memory.md). It shows whether a recipe learns the
dependence (validation and test rise together) or recalls the training series (the training
IC runs past the oracle's, which no forecast of new data can do).

    python scripts/memory_curve.py s4d 256 --seed 0 --set input_noise=0 --set patience=12

``--set`` overrides a ``TrainConfig`` field (JSON value). The curve costs one forward pass
over the whole series per epoch on top of the training. Diagnostic only: the table's cells
are ``scripts/memory_table.py run``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("kind")
    ap.add_argument("lag", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    import torch

    from s4_strategies.model.sequence import predict_sequence
    from s4_strategies.training import TrainConfig, fit, memory

    torch.set_num_threads(a.threads)
    over = {}
    for item in a.set:
        key, _, value = item.partition("=")
        over[key] = json.loads(value)
    cfg = replace(TrainConfig(progress=False, device="cpu"), **over)
    df, split = memory.planted_task(a.lag, a.seed)
    rows = []
    validate = fit.validation_losses

    def with_curve(model, x, y, valid, period, cfg, device, dtype, col=0):
        """fit's validation step, plus the ICs of one forward pass over every bar."""
        out = validate(model, x, y, valid, period, cfg, device, dtype, col)
        with torch.no_grad():
            r = predict_sequence(model, torch.as_tensor(x, dtype=dtype, device=device)[None])
        r = r["returns"][0, :, col].cpu().numpy()  # (n,)
        row = {"steps": len(rows) * cfg.steps_per_epoch,
               "val_next_bar_loss": round(float(out["next_bar"]), 4)}
        for name, (lo, hi) in (("train", split.train), ("val", split.val), ("test", split.test)):
            row[name] = round(memory.score(r, df, split, a.lag, (max(lo, a.lag + 1), hi))
                              ["fraction"], 3)
        rows.append(row)
        print(json.dumps(row), flush=True)
        return out

    fit.validation_losses = with_curve  # train_model looks it up at call time
    t = time.perf_counter()
    res = memory.probe(a.kind, a.lag, a.seed, cfg=cfg)
    best = res["best_epoch"]
    print(json.dumps({"kind": a.kind, "lag": a.lag, "seed": a.seed, "set": over,
                      "fraction": round(res["fraction"], 3), "best_epoch": best,
                      "seconds": round(time.perf_counter() - t),
                      "max_train": float(np.max([r["train"] for r in rows]))}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
