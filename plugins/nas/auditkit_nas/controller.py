"""The lecture's NAS controller (Zoph & Le 2017) as an Optuna sampler.

A small recurrent network emits the architecture one decision at a time: at each step it reads
the embedding of the previous choice, and a per-decision head gives a softmax over that
decision's choices. After a child is trained and audited, its objectives are scalarized into one
reward R (each objective signed so that higher is better, then summed) and the controller takes
one REINFORCE step on ``-(R - b) * log p(architecture) - w * H``, where ``b`` is an exponential
moving average of past rewards (the variance-reducing baseline) and ``H`` the policy's entropy
along the sampled decisions: with tens of children rather than thousands, a controller without
it commits to the first lucky architecture (the entropy bonus of Zoph et al.'s follow-ups).

The controller keeps no state of its own that the study does not hold: before sampling, it
replays every finished trial it has not learned from yet, in trial-number order. So a resumed
study, or another worker process on the same storage, trains the same controller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState
from torch import nn

Reward = Callable[[FrozenTrial], float | None]


def moving_average(rewards: Sequence[float], decay: float) -> list[float]:
    """The baseline after each reward: ``b_0 = R_0``, ``b_t = decay·b_{t-1} + (1-decay)·R_t``."""
    out: list[float] = []
    for r in rewards:
        out.append(r if not out else decay * out[-1] + (1.0 - decay) * r)
    return out


class Policy(nn.Module):
    """LSTM cell over the decisions; one embedding table and one softmax head per decision."""

    def __init__(self, sizes: Sequence[int], hidden: int = 32) -> None:
        super().__init__()
        self.hidden = hidden
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.cell = nn.LSTMCell(hidden, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in sizes)
        self.embeddings = nn.ModuleList(nn.Embedding(n, hidden) for n in sizes)

    def forward(
        self, choices: Sequence[int] | None = None, generator: torch.Generator | None = None
    ) -> tuple[list[int], torch.Tensor, torch.Tensor]:
        """Sample a decision sequence (``choices=None``) or score a given one.

        Returns the choices, their log-probability and the summed entropy of the decisions."""
        h = c = torch.zeros(1, self.hidden)
        x = self.start
        picked: list[int] = []
        log_prob = torch.zeros(())
        entropy = torch.zeros(())
        for step, head in enumerate(self.heads):
            h, c = self.cell(x, (h, c))
            logits = head(h)[0]
            if choices is None:
                probs = torch.softmax(logits.detach(), dim=0)
                index = int(torch.multinomial(probs, 1, generator=generator))
            else:
                index = int(choices[step])
            log_probs = torch.log_softmax(logits, dim=0)
            log_prob = log_prob + log_probs[index]
            entropy = entropy - (log_probs.exp() * log_probs).sum()
            picked.append(index)
            x = self.embeddings[step](torch.tensor([index]))
        return picked, log_prob, entropy


class ControllerSampler(BaseSampler):
    """REINFORCE controller over a fixed space of categorical decisions.

    Args:
        space: decision name → ``CategoricalDistribution``, in the order the RNN emits them.
        reward: a finished trial → its scalar reward (``None``: not learned from).
        seed: sampling seed; trial ``n`` draws with seed ``(seed, n)``, so workers and resumed
            runs sample reproducibly without sharing a random stream.
        lr: Adam learning rate of the controller (high: NAS here sees tens of children, not
            thousands).
        decay: moving-average decay of the reward baseline.
        entropy_weight: weight ``w`` of the entropy bonus.

    Example:
        >>> sampler = ControllerSampler(space.distributions(), reward=my_reward, seed=0)
        >>> study = optuna.create_study(directions=["maximize"], sampler=sampler)
    """

    def __init__(
        self,
        space: dict[str, BaseDistribution],
        *,
        reward: Reward,
        seed: int = 0,
        lr: float = 0.05,
        decay: float = 0.8,
        entropy_weight: float = 0.05,
        hidden: int = 32,
    ) -> None:
        for name, dist in space.items():
            if not isinstance(dist, CategoricalDistribution):
                raise TypeError(f"controller: decision {name} must be categorical")
        self.space = dict(space)
        self.reward = reward
        self.seed = int(seed)
        self.decay = float(decay)
        self.entropy_weight = float(entropy_weight)
        torch.manual_seed(self.seed)
        self.policy = Policy([len(d.choices) for d in self.space.values()], hidden=hidden)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=lr)
        self.baseline: float | None = None
        self.learned: set[int] = set()
        self._fallback = RandomSampler(seed=seed)

    # --- learning ------------------------------------------------------------------------
    def learn(self, trials: Sequence[FrozenTrial]) -> None:
        """One REINFORCE step per finished trial not learned from yet, in trial-number order."""
        for trial in sorted(trials, key=lambda t: t.number):
            if trial.number in self.learned or trial.state != TrialState.COMPLETE:
                continue
            self.learned.add(trial.number)
            reward = self.reward(trial)
            choices = self._indices(trial.params)
            if reward is None or choices is None:
                continue
            self.baseline = reward if self.baseline is None else self.baseline
            advantage = reward - self.baseline
            _, log_prob, entropy = self.policy(choices)
            loss = -advantage * log_prob - self.entropy_weight * entropy
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.baseline = self.decay * self.baseline + (1.0 - self.decay) * reward

    def _indices(self, params: dict[str, Any]) -> list[int] | None:
        try:
            return [d.choices.index(params[name]) for name, d in self.space.items()]
        except (KeyError, ValueError):
            return None

    def probabilities(self) -> dict[str, list[float]]:
        """The policy's greedy-path choice probabilities per decision (for inspection and tests)."""
        with torch.no_grad():
            h = c = torch.zeros(1, self.policy.hidden)
            x = self.policy.start
            out: dict[str, list[float]] = {}
            for step, name in enumerate(self.space):
                h, c = self.policy.cell(x, (h, c))
                probs = torch.softmax(self.policy.heads[step](h)[0], dim=0)
                out[name] = probs.tolist()
                x = self.policy.embeddings[step](probs.argmax().view(1))
            return out

    # --- the Optuna sampler interface ----------------------------------------------------
    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return dict(self.space)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        self.learn(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + trial.number)
        with torch.no_grad():
            picked, _, _ = self.policy(None, generator=generator)
        return {
            name: dist.choices[index]
            for (name, dist), index in zip(self.space.items(), picked, strict=True)
            if name in search_space
        }

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        # Only reached for a decision outside the space the controller was built for.
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)
