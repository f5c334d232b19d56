import os

import matplotlib

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_result():
    """A tiny S4D trained for a few steps on real BTCUSDT hourly bars (seconds on CPU)."""
    import torch

    import feeds
    from s4_strategies.features import FeatureSpec, LabelSpec
    from s4_strategies.training import TrainConfig, date_split, train_model

    torch.set_num_threads(1)
    df = feeds.load_embedded("bybit:BTCUSDT:60", todate="2021-06-30 23:00")
    lspec = LabelSpec()
    split = date_split(df.index, "2021-01-01", "2021-05-31", purge=lspec.max_horizon)
    cfg = TrainConfig(layer="s4d", d_model=16, d_state=16, n_layers=2, epochs=2, seq_len=256,
                      burn_in=32, batch_size=4, steps_per_epoch=2, progress=False,
                      dropout=0.0)
    return train_model(df, split, cfg, FeatureSpec(), lspec, data_name="bybit:BTCUSDT:60")


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_result, tmp_path_factory):
    from s4_strategies.training import save_result

    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_result(tiny_result, path)
    return path


#: the command that trains the tiny multi-asset checkpoint (``tiny_multi_checkpoint``)
MULTI_DATA = "bybit:BTCUSDT:60,bybit:ETHUSDT:60,bybit:SOLUSDT:60"
MULTI_TRAIN = ["train", "--multi", "--data", MULTI_DATA, "--from", "2021-06-01", "--to",
               "2021-12-31", "--epochs", "2", "--steps-per-epoch", "10", "--d-model", "8",
               "--d-state", "8", "--n-layers", "1", "--seq-len", "128", "--batch-size", "4",
               "--lr", "5e-3", "--quiet"]


@pytest.fixture(scope="session")
def tiny_multi_checkpoint(tmp_path_factory):
    """A tiny multi-asset S4D over BTC/ETH/SOL hourly, trained by ``s4trade train --multi``
    (SOLUSDT lists on 2021-10-15 and joins late; a few seconds on CPU)."""
    import torch

    from s4_strategies.apps.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("multi") / "multi.pt"
    try:
        assert main([*MULTI_TRAIN, "--out", str(path)]) == 0
    finally:
        torch.set_num_threads(threads)
    return path
