"""The names the README shows keep working wherever the modules behind them move."""

import importlib

import pytest

PUBLIC = {
    "s4_strategies": ["S4Indicator", "S4DirectionalStrategy", "S4PortfolioStrategy",
                      "S4MultiAssetStrategy", "AvellanedaStoikovStrategy", "load_model",
                      "save_model",
                      "default_checkpoint", "default_multi_checkpoint", "load_multi",
                      "make_features", "make_labels", "FeatureSpec",
                      "run_market_making", "MarketMakingBroker", "MakerTakerCommInfo",
                      "Predictor", "sweep"],
    "s4_strategies.features": ["FeatureSpec", "LabelSpec", "make_features", "make_labels",
                               "FeatureStream", "Normalizer"],
    "s4_strategies.training": ["TrainConfig", "date_split", "walk_forward_splits",
                               "train_model", "save_result"],
    "s4_strategies.market_making": ["reservation_price", "optimal_spread", "as_quotes",
                                    "as_quotes_rounded", "glft_quotes", "glft_quotes_rounded",
                                    "round_quotes", "quote_sizes", "fill_probability",
                                    "calibrate_from_trades", "calibrate_from_bars",
                                    "MarketMakingBroker"],
    "s4_strategies.ssm": ["build_model", "model_from_config", "ModelConfig", "S4TradingModel",
                          "S4Layer", "S4DLayer", "SelectiveSSM", "hippo_legs"],
    "s4_strategies.model": ["Predictor", "PredictorStream", "CheckpointError", "load_model",
                            "save_model", "default_checkpoint", "default_multi_checkpoint",
                            "load_multi", "MultiPredictor"],
    "s4_strategies.strategies": ["S4DirectionalStrategy", "S4PortfolioStrategy",
                                 "S4MultiAssetStrategy", "AvellanedaStoikovStrategy"],
    "s4_strategies.training.research": ["load_spec", "parse_spec", "walk_forward", "Layout",
                                        "deflated_sharpe", "pbo_cscv", "SpecError"],
    "s4_strategies.fees": ["BYBIT_TAKER", "BYBIT_MAKER", "PercentCommission",
                           "MakerTakerCommInfo", "set_bybit_fees"],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names_resolve(module):
    mod = importlib.import_module(module)
    missing = [n for n in PUBLIC[module] if not hasattr(mod, n)]
    assert not missing, f"{module} lacks {missing}"


@pytest.mark.parametrize("module", ["feeds", "analyzers"])
def test_everything_in_all_resolves(module):
    mod = importlib.import_module(module)
    assert mod.__all__
    missing = [n for n in mod.__all__ if getattr(mod, n, None) is None]
    assert not missing, f"{module}.__all__ names {missing} that do not resolve"


def test_unknown_names_are_an_attribute_error():
    import feeds
    import s4_strategies

    for mod in (feeds, s4_strategies):
        with pytest.raises(AttributeError, match="no attribute"):
            mod.NotAThing  # noqa: B018


def test_s4trade_commands_and_flags(capsys):
    from s4_strategies.apps.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert {"train", "compare", "research", "backtest", "demo"} <= set(sub.choices)
    research = {a.dest for a in sub.choices["research"]._actions}
    assert {"spec", "out", "address", "workers", "serial", "max_trials"} <= research
    flags = {a.dest for a in sub.choices["backtest"]._actions}
    assert {"strategy", "data", "model"} <= flags
