import pytest

from workbench import config, experiment
from workbench.config import ConfigError


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"method": "l3"}, "unknown method 'l3'; known: "),
        ({"dataset": "imagenet21k"}, "unknown dataset 'imagenet21k'; known: "),
        ({"model": "resnet57"}, "unknown model 'resnet57'"),
        ({"sparsity": 1.0}, "sparsity must be a number in [0, 1), got 1.0"),
        ({"sparsity": -0.1}, "sparsity must be a number in [0, 1)"),
        ({"epochs": -1}, "epochs must be an integer >= 0, got -1"),
        ({"finetune_epochs": 1.5}, "finetune_epochs must be an integer >= 0"),
        ({"seed": -3}, "seed must be an integer >= 0"),
        ({"lr": "fast"}, "lr must be a number >= 0"),
        ({"spasity": 0.5}, "unknown parameter 'spasity'; known: "),
    ],
)
def test_bad_parameters_are_rejected_in_one_line(params, message):
    with pytest.raises(ConfigError) as info:
        config.from_flat(**params)
    text = str(info.value)
    assert message in text and "\n" not in text


def test_known_names_listed_in_the_error():
    with pytest.raises(ConfigError, match="global_magnitude"):
        config.from_flat(method="l3")


def test_plan_validates_every_grid_point_before_training():
    with pytest.raises(ConfigError, match="sparsity must be"):
        experiment.plan(["lamp"], [0.5, 1.2], [0])
    with pytest.raises(ConfigError, match="seeds must be a non-empty list"):
        experiment.plan(["lamp"], [0.5], 0)


def test_run_sweep_rejects_a_method_of_another_family_before_training(monkeypatch):
    monkeypatch.setattr(experiment.training, "dense_baseline", lambda *a: pytest.fail("trained"))
    with pytest.raises(ConfigError, match="not in family 'filter-ranking'"):
        experiment.run_sweep("t", "filter-ranking", ["lamp"], [0.5], [0])


def test_configs_are_frozen_and_hash_stably():
    a = config.from_flat(method="lamp", sparsity=0.5, seed=1)
    b = config.from_flat(method="random", sparsity=0.9, seed=1)
    with pytest.raises(AttributeError):
        a.seed = 2
    assert a.dense_key() == b.dense_key()  # pruning settings do not change the dense baseline
    assert a.dense_key() != config.from_flat(seed=2).dense_key()
    assert a.dense_key() != config.from_flat(seed=1, epochs=3).dense_key()
