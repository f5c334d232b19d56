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


def sample_starts(rng: np.random.Generator, lo: int, hi: int, seq_len: int, n: int) -> np.ndarray:
    """``n`` window starts uniform over [lo, hi - seq_len] (every offset admissible)."""
    if hi - lo < seq_len:
        raise ValueError(f"the training period holds {hi - lo} bars: fewer than one window "
                         f"of seq_len {seq_len}")
    return rng.integers(lo, hi - seq_len + 1, size=n)  # (n,)
