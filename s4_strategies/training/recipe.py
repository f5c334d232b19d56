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
#: Stopping criteria: the validation rank IC of the next-bar return forecast (the trunk's own
#: target, see TRUNKS; scale-free), the validation loss of the next-bar return, of the signal
#: head (cross-entropy, the one trading uses) or the weighted sum of all heads. Why the IC by
#: default: while a model learns a weak dependence it also fits some of the training noise;
#: the noise it fits inflates its forecasts' spread, so the validation loss turns up while the
#: ranking of the forecasts (what trading acts on; the cost-aware band is then chosen on
#: validation in the forecast's own units) still improves. Measured on a lag-256 planted
#: dependence: the next-bar loss is lowest after 50 steps (test IC 9 % of the oracle's) and
#: rises from there while the test IC climbs to 28 % (docs/results/memory.md).
CRITERIA = ("next_bar_ic", "next_bar", "signal", "total")
#: Criteria whose validation number is a skill (higher is better): fit_loop minimises its
#: negative. The validation loss checked for divergence under each criterion.
SKILLS = ("next_bar_ic",)
LOSS_OF = {"next_bar_ic": "next_bar"}
LABELS = {"next_bar_ic": "validation next-bar rank IC (lower score = higher IC: score = -IC)"}


def criterion_score(v: dict, criterion: str) -> float:
    """The number :func:`fit_loop` minimises for the validation results ``v``: the loss, or
    -IC for a skill (an undefined IC, a constant forecast, scores 0: no skill)."""
    x = v[criterion]
    if criterion in SKILLS:
        return 0.0 if not math.isfinite(x) else -float(x)
    return float(x)


def criterion_label(criterion: str, suffix: str = "") -> str:
    """How the checkpoint's ``meta["recipe"]["criterion"]`` names it."""
    return LABELS.get(criterion, f"validation {criterion} loss") + suffix
#: Which heads' gradients reach the shared layers (the trunk). "next_bar": the next-bar
#: return's only; every other head (signal class over 5 bars, returns over 5 and 20, the
#: volatility of the next 24) is fitted on the trunk's output with its gradient stopped
#: there. "all": every head's (the recipe before issue 30). Why: a head whose target spans
#: h bars has about n/h independent targets on n bars and an h times noisier gradient for
#: the same dependence; through the trunk it teaches the model to recall the training
#: series instead (docs/results/memory.md).
TRUNKS = ("next_bar", "all")


def route_heads(model, x, col: int) -> dict:
    """``model(x)`` with the same values, but every head's gradient stopped at the trunk
    except that of column ``col`` of the returns head. The trunk output is the input of
    ``model.heads`` (every single-asset model has one)."""
    import torch

    seen = []
    hook = model.heads.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    try:
        out = model(x)
    finally:
        hook.remove()
    cut = model.heads(seen[0].detach())  # the heads on a trunk output with no gradient
    keep = torch.zeros(out["returns"].shape[-1], dtype=torch.bool, device=x.device)  # (R,)
    keep[col] = True
    return {**cut, "returns": torch.where(keep, out["returns"], cut["returns"])}  # (B, L, R)


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
    context; ``batch(starts, seq_len)`` -> (x, y, mask), then ``cfg.input_noise``
    (:func:`add_input_noise`) on x. Seeded by ``cfg.seed``."""
    rng = np.random.default_rng(cfg.seed)
    noise_rng = np.random.default_rng([cfg.seed, 31])
    sigma = float(cfg.input_noise)
    lo, hi = train
    lo = max(lo, min(warmup - cfg.burn_in, hi - cfg.seq_len))
    seq_len = min(cfg.seq_len, hi - lo)

    def draw():
        x, y, mask = batch(sample_starts(rng, lo, hi, seq_len, cfg.batch_size), seq_len)
        return add_input_noise(x, sigma, noise_rng), y, mask

    return draw


def add_input_noise(x, sigma: float, rng: np.random.Generator):
    """x + σ ε, ε ~ N(0, 1) independent for every bar and feature (x: the normalised features
    of a training batch (B, L, F), a tensor). Training with input noise is Tikhonov
    regularisation (Bishop 1995): for a model linear in its inputs, f(x) = Σ_j w_j * x_j
    (each w_j a causal filter over the past bars of feature j),

        E_ε (y − f(x + σ ε))² = (y − f(x))² + σ² Σ_j ‖w_j‖²

    so the noise is a ridge penalty on every filter. It is what stops a long-memory model
    from recalling the training series: with F features and filters as long as the window,
    the model has about F × seq_len free coefficients against as many training bars, and
    the least-norm fit of the noise needs large filters, a sparse real dependence (one
    return k bars back) a small one (docs/results/memory.md). σ in units of the features'
    training std; validation and prediction never see the noise. σ = 0: x unchanged."""
    if sigma <= 0:
        return x
    import torch

    eps = torch.from_numpy(rng.standard_normal(tuple(x.shape), dtype=np.float32))  # (B, L, F)
    return x + sigma * eps.to(device=x.device, dtype=x.dtype)  # (B, L, F)


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
                           and k != "val_loss" and k[4:] not in SKILLS},
            **{f"val_{k}": best[f"val_{k}"] for k in SKILLS if f"val_{k}" in best},
            "initial_val_losses": self.initial,
        }


def fit_loop(model, cfg, draw: Callable, losses: Callable, total: Callable,
             validate: Callable, label: str, forward: Callable | None = None) -> LoopResult:
    """The recipe's optimisation, shared by every trainer: ``cfg.epochs`` × ``steps_per_epoch``
    AdamW steps (``param_groups``, one-cycle, gradient clipping) on batches from ``draw()``
    -> (x, y, mask); ``forward(x)`` (default ``model``) -> outputs; ``losses(out, y, mask)``
    -> per-head losses, ``total(parts)`` their sum; after each epoch ``validate()`` ->
    per-head validation losses; keeps the best weights by ``cfg.criterion`` (loaded into
    ``model``), early stop after ``patience``. The history holds, per epoch, the mean
    training loss and the validation loss of every head."""
    import torch

    forward = forward or model

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
        counts: dict[str, int] = {}
        for _ in range(cfg.steps_per_epoch):
            xb, yb, mb = draw()
            parts = losses(forward(xb), yb, mb)
            if parts:  # something was scored in this batch
                opt.zero_grad(set_to_none=True)
                total(parts).backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                steps += 1
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
                    counts[k] = counts.get(k, 0) + 1
                bar.set_postfix(running(sums, counts), refresh=False)
            sched.step()
            bar.update(1)
        v = validate()
        score = criterion_score(v, cfg.criterion)
        history.append({"epoch": epoch, "steps": steps, "val_loss": score,
                        **{f"val_{k}": x for k, x in v.items()},
                        **{f"train_{k}": s / counts[k] for k, s in sums.items()}})
        bar.set_postfix({**running(sums, counts), "val": f"{score:.4f}"})
        loss = LOSS_OF.get(cfg.criterion, cfg.criterion)
        if not math.isfinite(v[loss]):
            raise FloatingPointError(f"validation {loss} loss is {v[loss]} after epoch "
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


def running(sums: dict, counts: dict) -> dict:
    """The epoch's mean training loss of every head so far, for the progress bar."""
    return {k: f"{sums[k] / counts[k]:.3f}" for k in sums}


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix(self, *args, **kw):
        pass

    def close(self):
        pass


def progress(total: int, enabled: bool, desc: str):
    """A tqdm bar, or one that does nothing."""
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)


def history_table(history: list[dict], best_epoch: int) -> str:
    """The training curve as a small text table: per epoch the steps run, the mean training
    loss and the validation loss of every head (and the validation next-bar IC); ``*`` marks
    the epoch kept."""
    heads = [k[4:] for k in history[0] if k.startswith("val_") and k != "val_loss"] \
        if history else []
    order = ("next_bar_ic", "next_bar", "signal", "returns", "vol", "total")
    heads = [h for h in order if h in heads] + [h for h in heads if h not in order]
    fitted = [h for h in heads if h != "total" and h not in SKILLS]  # have a training loss
    cols = ["epoch", "steps"] + [f"train {h}" for h in fitted] + [f"val {h}" for h in heads]
    rows = []
    for h in history:
        cells = [f"{h['epoch']}{'*' if h['epoch'] == best_epoch else ''}", str(h["steps"])]
        cells += [_num(h.get(f"train_{k}")) for k in fitted]
        cells += [_num(h.get(f"val_{k}")) for k in heads]
        rows.append(cells)
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(cols), *map(line, rows)])


def _num(v) -> str:
    return "–" if v is None else f"{v:.4f}"
