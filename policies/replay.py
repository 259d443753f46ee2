"""Offline evaluation's replay: logged events through blank policies, kept as per-event arrays.

Replay (Personalizer's offline evaluation): every policy starts blank and sees the events in
learning order; for each event it first gives its pmf (progressive validation) and then learns
the event off-policy (the logged action, cost −reward, the logged probability). A shared reward
model, a VW `--cb_adf` regressor, predicts every action's reward the same way (for DM and DR).

Memory: per event and policy only π(a_logged|x) and Σ_a π(a|x)·q̂(x,a) are kept. They rebuild an
exact two-action feedback: action 0 is the logged action, action 1 stands for all the others (its
probability 1 − π(a_logged|x), its reward estimate the π-weighted mean of theirs). IPS, SNIPS, DM
and DR on it equal their values on the full (n, K) arrays.
"""

from __future__ import annotations

import json
import math
from array import array
from dataclasses import dataclass

import numpy as np

from policies.vw import Policy

REWARD_MODEL_ARGUMENTS = "--cb_adf --cb_type mtr -q ::"
NON_LEARNING = ("Baseline", "Random")  # sources whose policy is fixed (no VW arguments)


@dataclass(frozen=True)
class LoggedEvent:
    seq: int  # position in the one learning order
    timestamp: float  # decision time, epoch seconds (UTC)
    example: str  # VW JSON text of the context + eligible actions
    action: int  # position of the logged (served) action among the example's actions
    probability: float  # logging probability of `action`
    reward: float  # the final (joined) reward


@dataclass(frozen=True)
class PolicySpec:
    name: str
    source: str  # "Online" | "Baseline" | "Random" | "Custom" | "OfflineExperimentation"
    arguments: str | None  # VW arguments (exploration applied); None for Baseline/Random


class RewardModel:
    """A VW `--cb_adf` regressor of every action's reward: the q̂(x, a) of DM and DR."""

    def __init__(self, arguments: str = REWARD_MODEL_ARGUMENTS) -> None:
        self._model = Policy(arguments)  # a CB learner too: Policy's fast paths apply

    def predict_then_learn(
        self, example: str, action: int, reward: float, probability: float
    ) -> list[float]:
        """Every action's predicted reward (−predicted cost) before learning the event."""
        costs = self._model.score_and_learn(example, action, -reward, probability)
        return [-cost for cost in costs]


@dataclass(frozen=True)
class ReplayResult:
    """Per event: shared arrays (n,); per policy (in `specs` order): p_logged and dm (n,)."""

    specs: tuple[PolicySpec, ...]
    timestamp: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray  # logging probability of the logged action
    q_logged: np.ndarray  # q̂(x, a_logged)
    p_logged: tuple[np.ndarray, ...]  # π(a_logged | x), before learning the event
    dm: tuple[np.ndarray, ...]  # Σ_a π(a | x)·q̂(x, a)

    @property
    def events(self) -> int:
        return len(self.reward)

    def index(self, name: str) -> int | None:
        return next((i for i, s in enumerate(self.specs) if s.name == name), None)

    def non_zero(self, policy: int) -> int:
        """Events where the policy gave the logged action a positive probability."""
        return int(np.count_nonzero(self.p_logged[policy] > 0))

    def feedback(self, policy: int) -> dict[str, np.ndarray]:
        """The exact two-action (OBP single-slot) arrays for the estimators."""
        p, q = self.p_logged[policy], self.q_logged
        rest = np.clip(1.0 - p, 0.0, None)
        others = np.divide(self.dm[policy] - p * q, rest, out=np.zeros_like(p), where=rest > 0)
        return {
            "reward": self.reward,
            "action": np.zeros(self.events, dtype=np.int64),
            "pscore": self.pscore,
            "action_dist": np.column_stack([p, rest]),
            "estimated_rewards": np.column_stack([q, others]),
        }


class Replay:
    """Feed events in learning order with `add`, then read `result()`. Keeps no examples."""

    def __init__(
        self, specs: list[PolicySpec], reward_model_arguments: str | None = REWARD_MODEL_ARGUMENTS
    ) -> None:
        """`reward_model_arguments=None`: no reward model (q̂ = 0; DM and DR meaningless)."""
        self.specs = tuple(specs)
        if any(s.source not in NON_LEARNING and not s.arguments for s in self.specs):
            raise ValueError("a learning policy needs its VW arguments")
        self._policies = [
            None if s.source in NON_LEARNING else Policy(s.arguments or "") for s in self.specs
        ]
        self._model = RewardModel(reward_model_arguments) if reward_model_arguments else None
        self._timestamp, self._reward = array("d"), array("d")
        self._pscore, self._q_logged = array("d"), array("d")
        self._p_logged = [array("d") for _ in self.specs]
        self._dm = [array("d") for _ in self.specs]
        self._ended = False

    def add(self, event: LoggedEvent) -> None:
        if self._ended:
            raise RuntimeError("the replay has ended: result() was called")
        if not 0 < event.probability <= 1:
            raise ValueError(f"event {event.seq}: probability must be in (0, 1]")
        if not math.isfinite(event.reward):
            raise ValueError(f"event {event.seq}: the reward must be a finite number")
        outside = f"event {event.seq}: the logged action is not among its actions"
        if event.action < 0:
            raise ValueError(outside)
        cost = -event.reward
        rewards = None
        try:  # the first workspace that finds too few actions fails before learning anything
            if self._model is not None:
                rewards = self._model.predict_then_learn(
                    event.example, event.action, event.reward, event.probability
                )
            pmfs = [
                None
                if policy is None
                else policy.score_and_learn(event.example, event.action, cost, event.probability)
                for policy in self._policies
            ]
        except IndexError:
            raise ValueError(outside) from None
        k = _action_count(event.example, rewards, pmfs)
        if event.action >= k:
            raise ValueError(outside)
        for i, spec in enumerate(self.specs):
            pmf = pmfs[i]
            if pmf is None:  # Baseline: the first action; Random: uniform
                pmf = [1.0] + [0.0] * (k - 1) if spec.source == "Baseline" else [1.0 / k] * k
            self._p_logged[i].append(pmf[event.action])
            self._dm[i].append(sum(map(float.__mul__, pmf, rewards)) if rewards else 0.0)
        self._timestamp.append(event.timestamp)
        self._reward.append(event.reward)
        self._pscore.append(event.probability)
        self._q_logged.append(rewards[event.action] if rewards else 0.0)

    def result(self) -> ReplayResult:
        """The arrays, sharing the buffers (no copy): the replay takes no more events."""
        self._ended = True

        def view(values: array) -> np.ndarray:
            out = np.frombuffer(values, dtype=np.float64)
            out.flags.writeable = False
            return out

        return ReplayResult(
            specs=self.specs,
            timestamp=view(self._timestamp),
            reward=view(self._reward),
            pscore=view(self._pscore),
            q_logged=view(self._q_logged),
            p_logged=tuple(map(view, self._p_logged)),
            dm=tuple(map(view, self._dm)),
        )


def _action_count(example: str, rewards: list[float] | None, pmfs: list) -> int:
    if rewards is not None:
        return len(rewards)
    for pmf in pmfs:
        if pmf is not None:
            return len(pmf)
    return len(json.loads(example)["_multi"])
