"""The small checkpoint shipped with the package (made by ``scripts/make_pretrained.py``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

NAME = "s4d_btcusdt_1h.pt"


def default_checkpoint() -> Path:
    """Path of the shipped S4D checkpoint (trained on Bybit BTCUSDT hourly 2021–2022)."""
    path = Path(str(resources.files("s4_strategies").joinpath("model", "weights", NAME)))
    if not path.exists():
        raise FileNotFoundError(
            f"no shipped checkpoint at {path}; train one with `s4trade train --out PATH` "
            "and pass --model PATH"
        )
    return path
