"""The optimisation recipe: parameter groups, window sampling and the stopping criterion.

Parameter groups (as in the S4/S4D papers and Mamba):

    "ssm"       A, B, Δ (S4: Λ, P, B, log Δ; S4D: log -Re A, Im A, B, log Δ; selective SSM:
                A_log and the Δ bias), named by each layer's ``ssm_parameter_names``:
                learning rate ``ssm_lr`` (lower), no weight decay
    "no_decay"  biases, LayerNorm gains, the skip ``D``: learning rate ``lr``, no weight decay
    "decay"     every other weight: learning rate ``lr``, weight decay ``weight_decay``

Windows: every optimiser step draws ``batch_size`` windows of ``seq_len`` bars whose starts
are uniform over every admissible offset, so an epoch is a fixed number of steps whatever
the length of the data, and no two epochs see the same cut of the series.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

GROUPS = ("ssm", "no_decay", "decay")
#: Stopping criteria: the validation loss of the signal head (cross-entropy, the one trading
#: uses) or the weighted sum of all heads.
CRITERIA = ("signal", "total")


def ssm_parameter_names(model) -> set[str]:
    """Full names of the state space parameters of every SSM layer in ``model``."""
    names = set()
    for prefix, module in model.named_modules():
        for short in getattr(module, "ssm_parameter_names", ()):
            full = f"{prefix}.{short}" if prefix else short
            names.add(full)
    return names


def _no_decay(name: str, param) -> bool:
    return param.dim() < 2 or name.endswith(".D")


def param_groups(model, lr: float, ssm_lr: float, weight_decay: float) -> list[dict]:
    """AdamW parameter groups (with a ``name`` each; empty groups dropped)."""
    ssm = ssm_parameter_names(model)
    split = {g: [] for g in GROUPS}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        group = "ssm" if name in ssm else "no_decay" if _no_decay(name, p) else "decay"
        split[group].append(p)
    settings = {"ssm": (ssm_lr, 0.0), "no_decay": (lr, 0.0), "decay": (lr, weight_decay)}
    return [{"name": g, "params": split[g], "lr": settings[g][0],
             "weight_decay": settings[g][1]} for g in GROUPS if split[g]]


def describe_groups(groups: list[dict]) -> list[dict]:
    """The groups as the checkpoint records them: name, learning rate, weight decay, size."""
    return [{"name": g["name"], "lr": g.get("max_lr", g["lr"]),
             "weight_decay": g["weight_decay"],
             "n_params": int(sum(p.numel() for p in g["params"]))} for g in groups]


def window_draw(cfg, train: tuple[int, int], warmup: int, batch: Callable) -> Callable:
    """``draw()`` for :func:`fit_loop`: ``cfg.batch_size`` random windows of the training
    period [train), starting where the features are defined less a burn-in of warm-up
    context; ``batch(starts, seq_len)`` -> (x, y, mask). Seeded by ``cfg.seed``."""
    rng = np.random.default_rng(cfg.seed)
    lo, hi = train
    lo = max(lo, min(warmup - cfg.burn_in, hi - cfg.seq_len))
    seq_len = min(cfg.seq_len, hi - lo)
    return lambda: batch(sample_starts(rng, lo, hi, seq_len, cfg.batch_size), seq_len)


def sample_starts(rng: np.random.Generator, lo: int, hi: int, seq_len: int, n: int) -> np.ndarray:
    """``n`` window starts uniform over [lo, hi - seq_len] (every offset admissible)."""
    if hi - lo < seq_len:
        raise ValueError(f"the training period holds {hi - lo} bars: fewer than one window "
                         f"of seq_len {seq_len}")
    return rng.integers(lo, hi - seq_len + 1, size=n)  # (n,)


@dataclass
class LoopResult:
    """What :func:`fit_loop` did: the per-epoch history, the best epoch by the criterion and
    its value, the untrained validation losses, the optimiser steps and the groups."""

    history: list
    best_epoch: int
    best: float
    initial: dict
    steps: int
    groups: list
    seconds: float

    def recipe(self, criterion: str) -> dict:
        """The checkpoint's ``meta["recipe"]``."""
        best = self.history[self.best_epoch]
        return {
            "optimizer": "AdamW",
            "schedule": "one-cycle",
            "steps_taken": self.steps,
            "steps_to_best": best["steps"],
            "param_groups": describe_groups(self.groups),
            "criterion": criterion,
            "criterion_value": self.best,
            "val_losses": {k[4:]: best[k] for k in best if k.startswith("val_")
                           and k != "val_loss"},
            "initial_val_losses": self.initial,
        }


def fit_loop(model, cfg, draw: Callable, losses: Callable, total: Callable,
             validate: Callable, label: str) -> LoopResult:
    """The recipe's optimisation, shared by every trainer: ``cfg.epochs`` × ``steps_per_epoch``
    AdamW steps (``param_groups``, one-cycle, gradient clipping) on batches from ``draw()``
    -> (x, y, mask); ``losses(out, y, mask)`` -> per-head losses, ``total(parts)`` their
    sum; after each epoch ``validate()`` -> per-head validation losses; keeps the best
    weights by ``cfg.criterion`` (loaded into ``model``), early stop after ``patience``."""
    import torch

    groups = param_groups(model, cfg.lr, cfg.ssm_lr, cfg.weight_decay)
    opt = torch.optim.AdamW(groups)
    total_steps = cfg.epochs * cfg.steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[g["lr"] for g in groups], total_steps=total_steps, pct_start=0.1)
    initial = validate()  # untrained
    best, best_state, best_epoch, bad, steps = math.inf, None, -1, 0, 0
    history = []
    t0 = time.perf_counter()
    bar = progress(total_steps, cfg.progress, f"train {label}")
    for epoch in range(cfg.epochs):
        model.train()
        sums: dict[str, float] = {}
        for _ in range(cfg.steps_per_epoch):
            xb, yb, mb = draw()
            parts = losses(model(xb), yb, mb)
            if parts:  # something was scored in this batch
                opt.zero_grad(set_to_none=True)
                total(parts).backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                steps += 1
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
            sched.step()
            bar.update(1)
        v = validate()
        score = v[cfg.criterion]
        history.append({"epoch": epoch, "steps": steps, "val_loss": score,
                        **{f"val_{k}": x for k, x in v.items()},
                        **{f"train_{k}": s / cfg.steps_per_epoch for k, s in sums.items()}})
        bar.set_postfix(val=f"{score:.4f}")
        if not math.isfinite(score):
            raise FloatingPointError(f"validation {cfg.criterion} loss is {score} after epoch "
                                     f"{epoch} ({label}, seed {cfg.seed}): training diverged")
        if score < best - 1e-5:
            best, best_epoch, bad = score, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    bar.close()
    model.load_state_dict(best_state)
    return LoopResult(history, best_epoch, best, initial, steps, groups,
                      time.perf_counter() - t0)


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix(self, **kw):
        pass

    def close(self):
        pass


def progress(total: int, enabled: bool, desc: str):
    """A tqdm bar, or one that does nothing."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)
