"""The REINFORCE controller, as an Optuna sampler, learns from rewards and replays from the study."""

import optuna
import pytest
from auditkit_nas.controller import ControllerSampler, moving_average
from auditkit_nas.space import search_space

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = search_space("image")


def toy_reward(params):
    """Rewards one corner of the space; no single decision carries all of it."""
    return (
        (params["activation"] == "tanh")
        + (params["batch_norm"] is True)
        + (params["classifier"] == 128)
        + (params["blocks"] == 2)
    ) / 4.0


def run(n_trials, seed=0, study=None):
    sampler = ControllerSampler(
        SPACE.distributions(), reward=lambda t: t.values[0], seed=seed, lr=0.05
    )
    study = study or optuna.create_study(direction="maximize")
    study.sampler = sampler
    study.optimize(lambda trial: toy_reward(SPACE.suggest(trial)), n_trials=n_trials)
    return study, sampler


def test_moving_average_reward_rises():
    study, sampler = run(60)
    rewards = [t.value for t in study.trials]
    average = moving_average(rewards, 0.8)
    # Chance level is 1/2·1/4·1/4·1/3 per part; the controller must do clearly better later on.
    assert sum(rewards[-15:]) / 15 > sum(rewards[:15]) / 15 + 0.15
    assert average[-1] > average[9] + 0.1
    assert sampler.probabilities()["activation"][list(SPACE.decisions["activation"]).index("tanh")] > 0.4


def test_controller_state_is_rebuilt_from_the_study():
    # A fresh sampler on the same study (a resumed run, another worker) learns the same policy.
    study, first = run(12)
    second = ControllerSampler(SPACE.distributions(), reward=lambda t: t.values[0], seed=0, lr=0.05)
    second.learn(study.trials)
    first.learn(study.trials)
    assert second.baseline == pytest.approx(first.baseline)
    for name, probs in first.probabilities().items():
        assert second.probabilities()[name] == pytest.approx(probs), name


def test_same_seed_same_architectures():
    a, _ = run(5, seed=3)
    b, _ = run(5, seed=3)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
