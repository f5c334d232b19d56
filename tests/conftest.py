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
