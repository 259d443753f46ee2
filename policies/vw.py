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


class Policy:
    def __init__(self, arguments: str, model: bytes | None = None) -> None:
        self.arguments = arguments
        args = [*shlex.split(arguments), "--quiet"]
        self._workspace = vw.Workspace(args, model_data=model)
        self._parser = vw.JsonFormatParser(self._workspace)

    def _examples(self, context: list[dict[str, Any]], actions: list[Action]) -> list[Any]:
        return self._parser.parse_json(json.dumps(vw_document(context, actions)))

    def pmf(self, context: list[dict[str, Any]], actions: list[Action]) -> list[float]:
        """Probability of each action, in the order of `actions` (VW returns them sorted)."""
        pairs = self._workspace.predict_one(self._examples(context, actions))
        probabilities = [0.0] * len(actions)
        for index, probability in pairs:
            probabilities[index] = float(probability)
        return probabilities

    def learn(
        self,
        context: list[dict[str, Any]],
        actions: list[Action],
        chosen: int,
        cost: float,
        probability: float,
    ) -> None:
        """Learn that `actions[chosen]`, shown with `probability`, cost `cost` (= −reward)."""
        examples = self._examples(context, actions)
        examples[chosen + 1].set_label(vw.CBLabel(label=(0, cost, probability)))
        self._workspace.learn_one(examples)

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
