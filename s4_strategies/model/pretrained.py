"""The small checkpoints shipped with the package: the single-asset S4D (made by
``scripts/make_pretrained.py``) and the multi-asset one (``scripts/make_pretrained_multi.py``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

NAME = "s4d_btcusdt_1h.pt"
MULTI_NAME = "s4d_multi_btc_eth_sol_1h.pt"


def _shipped(name: str, how: str) -> Path:
    path = Path(str(resources.files("s4_strategies").joinpath("model", "weights", name)))
    if not path.exists():
        raise FileNotFoundError(f"no shipped checkpoint at {path}; train one with `{how}` "
                                "and pass --model PATH")
    return path


def default_checkpoint() -> Path:
    """Path of the shipped S4D checkpoint (trained on Bybit BTCUSDT hourly 2021–2022)."""
    return _shipped(NAME, "s4trade train --out PATH")


def default_multi_checkpoint() -> Path:
    """Path of the shipped multi-asset checkpoint: one S4D encoder over Bybit BTCUSDT,
    ETHUSDT and SOLUSDT hourly 2021–2022 (an "s4-multi/1" file, ``load_multi``)."""
    return _shipped(MULTI_NAME, "s4trade train --multi --data A,B,... --out PATH")
