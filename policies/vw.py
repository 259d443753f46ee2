"""A policy: a VW `--cb_explore_adf` workspace that gives a pmf over actions and learns.

The workspace is not thread-safe; the owner calls it from one thread at a time.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

import vowpal_wabbit_next as vw

from policies.features import Action, vw_document


class ModelError(ValueError):
    """Model bytes that VW cannot load as a `--cb_explore_adf` policy."""


def example_text(context: list[dict[str, Any]], actions: list[Action]) -> str:
    """The VW JSON text of one decision over `actions` (what a policy ranks and learns from)."""
    return json.dumps(vw_document(context, actions), separators=(",", ":"), ensure_ascii=False)


class Policy:
    def __init__(self, arguments: str, model: bytes | None = None) -> None:
        self.arguments = arguments
        args = [*shlex.split(arguments), "--quiet"]
        self._workspace = vw.Workspace(args, model_data=model)
        self._parser = vw.JsonFormatParser(self._workspace)

    def pmf_of(self, example: str) -> list[float]:
        """Probability of each action of an `example_text`, in its order (VW sorts them)."""
        examples = self._parser.parse_json(example)
        probabilities = [0.0] * (len(examples) - 1)
        for index, probability in self._workspace.predict_one(examples):
            probabilities[index] = float(probability)
        return probabilities

    def pmf(self, context: list[dict[str, Any]], actions: list[Action]) -> list[float]:
        """Probability of each action, in the order of `actions`."""
        return self.pmf_of(example_text(context, actions))

    def learn_from(self, example: str, chosen: int, cost: float, probability: float) -> None:
        """Learn that action `chosen` of an `example_text`, shown with `probability`, cost
        `cost` (= −reward)."""
        examples = self._parser.parse_json(example)
        examples[chosen + 1].set_label(vw.CBLabel(label=(0, cost, probability)))
        self._workspace.learn_one(examples)

    def score_and_learn(
        self, example: str, chosen: int, cost: float, probability: float
    ) -> list[float]:
        """The pmf of an `example_text` as it was before learning it (progressive validation),
        then learn it as `learn_from` does."""
        examples = self._parser.parse_json(example)
        examples[chosen + 1].set_label(vw.CBLabel(label=(0, cost, probability)))
        pmf = [0.0] * (len(examples) - 1)
        for index, value in self._workspace.predict_then_learn_one(examples):
            pmf[index] = float(value)
        return pmf

    def learn(
        self,
        context: list[dict[str, Any]],
        actions: list[Action],
        chosen: int,
        cost: float,
        probability: float,
    ) -> None:
        """Learn that `actions[chosen]`, shown with `probability`, cost `cost` (= −reward)."""
        self.learn_from(example_text(context, actions), chosen, cost, probability)

    def to_bytes(self) -> bytes:
        return self._workspace.serialize()

    @classmethod
    def from_bytes(cls, arguments: str, model: bytes) -> Policy:
        return cls(arguments, model)

    @classmethod
    def load_checked(cls, arguments: str, model: bytes) -> Policy:
        """Load untrusted model bytes; ModelError unless they are a single-slot CB policy."""
        try:
            policy = cls(arguments, model)
        except Exception as exc:  # VW raises RuntimeError with its own message
            raise ModelError(f"VW cannot load the model: {exc}") from None
        if not policy.is_single_slot_cb():
            raise ModelError("The model is not a --cb_explore_adf policy.")
        return policy

    def is_single_slot_cb(self) -> bool:
        """True when the workspace takes CB labels and predicts action probabilities."""
        return (self._workspace.label_type, self._workspace.prediction_type) == (
            vw.LabelType.CB,
            vw.PredictionType.ActionProbs,
        )
