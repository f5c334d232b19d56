"""Regimes from the hidden state: the filter against scikit-learn and hmmlearn, causality,
the stream's hidden state, and the planted-regime check against the raw features."""

import numpy as np
import pandas as pd
import pytest
import torch

import feeds
from s4_strategies.model.regimes import RegimeFilter, RegimeModel
from s4_strategies.training.regimes import (
    adjusted_rand,
    fit_regime_model,
    fit_regimes,
    regime_inputs,
)


def _two_clusters(n=600, seed=0):
    rng = np.random.default_rng(seed)
    s = (np.arange(n) // 50) % 2  # blocks of 50 bars
    V = rng.normal(size=(n, 3)) * np.where(s[:, None], 2.0, 0.5) + s[:, None] * 1.5
    return V, s


def _identity(kind, gm_or_hmm, d):
    """A RegimeModel with no projection around the given sklearn / hmmlearn parameters."""
    eye = np.eye(d)
    if kind == "gmm":
        return RegimeModel("gmm", "state", np.zeros(d), np.ones(d), eye, gm_or_hmm.weights_,
                           gm_or_hmm.means_, gm_or_hmm.covariances_)
    return RegimeModel("hmm", "state", np.zeros(d), np.ones(d), eye, gm_or_hmm.startprob_,
                       gm_or_hmm.means_, gm_or_hmm.covars_, gm_or_hmm.transmat_)


def test_gmm_filter_is_the_mixture_posterior():
    from sklearn.mixture import GaussianMixture

    V, _ = _two_clusters()
    gm = GaussianMixture(2, covariance_type="full", random_state=0).fit(V)
    np.testing.assert_allclose(_identity("gmm", gm, 3).filter(V), gm.predict_proba(V),
                               atol=1e-10)


def test_hmm_filter_is_the_forward_filter_never_the_smoother():
    """p(s_t | z_1..z_t): at every t the smoothed posterior of the prefix z_1..z_t at its
    last bar (hmmlearn's forward-backward on the prefix), and not the smoothed posterior of
    the whole series, which reads bars after t."""
    from hmmlearn.hmm import GaussianHMM

    V, _ = _two_clusters()
    hmm = GaussianHMM(2, covariance_type="full", n_iter=20, random_state=0).fit(V)
    probs = _identity("hmm", hmm, 3).filter(V)
    for t in (0, 1, 7, 49, 50, 51, 120, 599):
        np.testing.assert_allclose(probs[t], hmm.predict_proba(V[: t + 1])[-1], atol=1e-8)
    assert np.abs(probs - hmm.predict_proba(V)).max() > 1e-3
    f = RegimeFilter(_identity("hmm", hmm, 3))
    np.testing.assert_allclose([f.step(v) for v in V], probs, atol=1e-12)


def test_fit_orders_regimes_by_volatility_and_round_trips(tmp_path):
    V, s = _two_clusters(1200, seed=1)
    vol = np.where(s == 1, 0.03, 0.01)  # cluster 1 is the turbulent one
    for kind in ("hmm", "gmm"):
        m = fit_regime_model(V, vol, n_regimes=2, kind=kind, n_components=2)
        labels = m.labels(V)
        # the HMM also reads that regimes last (blocks of 50 bars); the mixture bar by bar
        assert adjusted_rand(s, labels) > (0.9 if kind == "hmm" else 0.6)
        assert (labels == s).mean() > 0.9  # regime 0 = the calm cluster
        assert m.info["mean_abs_return"][0] < m.info["mean_abs_return"][1]
        back = RegimeModel.load(m.save(tmp_path / f"{kind}.json"))
        np.testing.assert_array_equal(back.filter(V), m.filter(V))
    with pytest.raises(ValueError, match="kind"):
        fit_regime_model(V, vol, kind="kmeans")
    with pytest.raises(ValueError, match="unknown regime model key"):
        RegimeModel.from_dict({**m.to_dict(), "colour": 1})


@pytest.mark.parametrize("kind", ["s5", "dss", "mamba", "gru", "transformer"])
def test_every_steppers_hidden_vector_is_the_parallel_views(kind):
    """What the heads read, bar by bar (numba or torch stepper) and in parallel."""
    from s4_strategies.model.sequence import predict_sequence
    from s4_strategies.ssm import build_model

    torch.manual_seed(0)
    m = build_model(kind, 5, d_model=8, d_state=8, n_layers=2).double().eval()
    x = np.random.default_rng(0).normal(size=(40, 5))
    with torch.no_grad():
        ref = predict_sequence(m, torch.as_tensor(x[None]), hidden=True)
    sp = m.stepper(hidden=True)
    steps = [sp.step(v) for v in x]
    np.testing.assert_allclose([s["hidden"] for s in steps], ref["hidden"][0], atol=1e-10)
    np.testing.assert_allclose([s["logits"] for s in steps], ref["logits"][0], atol=1e-10)
    assert m.stepper().step(x[0]).keys() == {"logits", "returns", "log_vol"}


@pytest.fixture(scope="module")
def predictor(tiny_result):
    return tiny_result.predictor


@pytest.fixture(scope="module")
def bars():
    return feeds.load_embedded("bybit:BTCUSDT:60", todate="2021-07-31 23:00")


def test_states_are_causal_and_equal_the_streams_hidden_state(predictor, bars):
    df = bars.iloc[-700:]
    states = predictor.states(df)
    assert states.shape == (700, predictor.model.config["d_model"])
    later = df.copy()
    later.iloc[400:, :4] *= 1.3  # another future: bars >= 400 move
    moved = predictor.states(later)
    assert np.abs(moved.iloc[:400].to_numpy() - states.iloc[:400].to_numpy()).max() < 1e-12
    assert np.abs(moved.iloc[400:].to_numpy() - states.iloc[400:].to_numpy()).max() > 1e-3
    stream = predictor.stream(hidden=True)
    rows = []
    for t, bar in df.iterrows():
        stream.step(bar.open, bar.high, bar.low, bar.close, bar.volume, t.hour, t.day_of_week)
        rows.append(stream.hidden.copy())
    np.testing.assert_allclose(np.array(rows), states.to_numpy(), atol=1e-8)
    ran = predictor.stream(hidden=True).run(predictor.features(df))["hidden"]
    np.testing.assert_allclose(ran, states.to_numpy(), atol=1e-8)


def test_fit_regimes_uses_the_training_period_only(predictor, bars):
    m = fit_regimes(predictor, bars, n_regimes=3)
    first, last = (pd.Timestamp(p) for p in predictor.meta["periods"]["train"])
    assert pd.Timestamp(m.info["period"][1]) <= last
    assert m.info["train_bars"] <= ((bars.index >= first) & (bars.index <= last)).sum()
    # the test bars do not move the fit: the same model from the bars up to the period's end
    m2 = fit_regimes(predictor, bars.loc[:last], n_regimes=3)
    V = regime_inputs(predictor, bars)
    np.testing.assert_allclose(m2.filter(V), m.filter(V), atol=1e-10)


@pytest.mark.slow
def test_planted_regimes_are_recovered_from_the_hidden_state():
    """Bars that switch between calm, a rising trend and a turbulent fall (mean stay 200
    bars). A small S4D trained on the first 60 % (its heads forecast returns and
    volatility); regimes fitted on that period; adjusted Rand index (chance: 0) with the
    truth on the last 40 %, for the HMM on the hidden state and the same HMM on the model's
    raw input features. Measured here: state 0.77, features 0.77; over other seeds the
    state gave 0.43 to 0.80 and the features 0.68 to 0.77 (they carry realised volatility
    over 24 and 168 bars, most of what tells these regimes apart): the bar is "far above
    chance", and the comparison over seeds is in docs/results/regimes.md."""
    from s4_strategies.features import FeatureSpec, LabelSpec
    from s4_strategies.training import TrainConfig, date_split, train_model
    from s4_strategies.training.synthetic import regime_bars

    torch.set_num_threads(1)
    n = 20_000
    df, truth = regime_bars(n, seed=1)
    lspec = LabelSpec()
    cut = int(n * 0.6)
    split = date_split(df.index, str(df.index[0]), str(df.index[cut]), purge=lspec.max_horizon,
                       test_from=str(df.index[cut + 30]))
    cfg = TrainConfig(layer="s4d", d_model=16, d_state=16, n_layers=2, seq_len=256,
                      burn_in=64, epochs=6, steps_per_epoch=40, batch_size=16, progress=False)
    p = train_model(df, split, cfg, FeatureSpec(), lspec, decide=False).predictor
    test = slice(*split.test)
    ari = {}
    for source in ("state", "features"):
        m = fit_regimes(p, df, kind="hmm", source=source)
        ari[source] = adjusted_rand(truth[test], m.labels(regime_inputs(p, df, source))[test])
    assert ari["state"] > 0.3 and ari["features"] > 0.3, ari
