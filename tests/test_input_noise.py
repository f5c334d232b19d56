"""Input noise on the training windows (recipe.add_input_noise, TrainConfig.input_noise)."""

import numpy as np
import pytest
import torch

from s4_strategies.training import TrainConfig
from s4_strategies.training.recipe import add_input_noise, window_draw


def test_zero_noise_returns_the_batch_unchanged():
    x = torch.randn(2, 5, 3)
    assert add_input_noise(x, 0.0, np.random.default_rng(0)) is x


def test_noise_is_gaussian_with_the_given_std_and_seeded():
    x = torch.zeros(8, 512, 17)
    a = add_input_noise(x, 1.5, np.random.default_rng(3))
    b = add_input_noise(x, 1.5, np.random.default_rng(3))
    assert torch.equal(a, b) and a.shape == x.shape and a.dtype == x.dtype
    assert abs(float(a.mean())) < 0.02
    assert float(a.std()) == pytest.approx(1.5, rel=0.01)
    # independent across bars and features: correlations within 4 standard errors of 0
    v = a.reshape(-1, 17).numpy()
    assert abs(np.corrcoef(v[:-1, 0], v[1:, 0])[0, 1]) < 4 / np.sqrt(len(v))
    assert abs(np.corrcoef(v[:, 0], v[:, 1])[0, 1]) < 4 / np.sqrt(len(v))


def test_expected_squared_error_under_noise_is_the_ridge_penalty():
    """For a linear filter, E (y - (x + σε)·w)² = (y - x·w)² + σ² ‖w‖² (Bishop 1995)."""
    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.standard_normal((1, 1, 6)), dtype=torch.float64)
    w = torch.as_tensor(rng.standard_normal(6), dtype=torch.float64)
    y, sigma = 0.7, 0.8
    draws = add_input_noise(x.expand(200_000, 1, 6).contiguous(), sigma, rng)  # (n, 1, 6)
    mc = float(((y - draws[:, 0] @ w) ** 2).mean())
    closed = float((y - x[0, 0] @ w) ** 2 + sigma ** 2 * (w ** 2).sum())
    assert mc == pytest.approx(closed, rel=0.01)


def test_window_draw_adds_the_configured_noise_to_x_only():
    y0 = {"returns": torch.ones(4, 64, 1)}
    mask0 = torch.ones(4, 64, dtype=torch.bool)

    def batch(starts, n):
        assert n == 64 and len(starts) == 4
        return torch.zeros(4, n, 3), y0, mask0

    cfg = TrainConfig(batch_size=4, seq_len=64, burn_in=8, input_noise=0.5, progress=False)
    x, y, mask = window_draw(cfg, (0, 1000), 0, batch)()
    assert y is y0 and mask is mask0
    assert float(x.std()) == pytest.approx(0.5, rel=0.1)
    clean = TrainConfig(batch_size=4, seq_len=64, burn_in=8, input_noise=0.0, progress=False)
    assert torch.count_nonzero(window_draw(clean, (0, 1000), 0, batch)()[0]) == 0


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_config_refuses_a_bad_noise_std(bad):
    with pytest.raises(ValueError, match="input_noise"):
        TrainConfig(input_noise=bad)
