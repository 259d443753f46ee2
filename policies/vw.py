"""A policy: a VW `--cb_explore_adf` workspace that gives a pmf over actions and learns.

The workspace is not thread-safe; the owner calls it from one thread at a time.
"""

from __future__ import annotations

import functools
import shlex
from typing import Any

import vowpal_wabbit_next as vw
from vowpal_wabbit_next import _core

from policies import codec
from policies.features import Action, vw_document


class ModelError(ValueError):
    """Model bytes that VW cannot load as a `--cb_explore_adf` policy."""


def example_text(context: list[dict[str, Any]], actions: list[Action]) -> str:
    """The VW JSON text of one decision over `actions` (what a policy ranks and learns from)."""
    return codec.dumps_text(vw_document(context, actions))


class Policy:
    def __init__(self, arguments: str, model: bytes | None = None) -> None:
        self.arguments = arguments
        args = [*shlex.split(arguments), "--quiet"]
        self._workspace = vw.Workspace(args, model_data=model)
        self._parser = vw.JsonFormatParser(self._workspace)
        core = self._workspace._workspace
        if core.get_is_multiline() and core.get_label_type() == vw.LabelType.CB:
            # The hot paths (every rank calls `pmf_of`; the learner calls `score_and_learn` or
            # `learn_from` for each event) call vowpal-wabbit-next's `_core` directly, as its
            # public wrappers do (0.7, pinned <0.8): those wrap each parsed line in an `Example`
            # and read the workspace's label type once per line to check labels, about half the
            # learner's time. Their check passes on every call exactly when the workspace is
            # multiline and takes CB labels (the only label we set), so it is made once, here.
            self._parse = functools.partial(_core._parse_line_json, core)
            self._set_label = _core.Example._set_label
            self._predict = core.predict_multi_ex_one
            self._learn = core.learn_multi_ex_one
            self._predict_then_learn = core.predict_then_learn_multi_ex_one
        else:  # any other workspace: the public API, with its checks on every call
            self._parse = self._parser.parse_json
            self._set_label = vw.Example.set_label
            self._predict = self._workspace.predict_one
            self._learn = self._workspace.learn_one
            self._predict_then_learn = self._workspace.predict_then_learn_one

    def pmf_of(self, example: str) -> list[float]:
        """Probability of each action of an `example_text`, in its order (VW sorts them)."""
        examples = self._parse(example)
        probabilities = [0.0] * (len(examples) - 1)
        for index, probability in self._predict(examples):
            probabilities[index] = float(probability)
        return probabilities

    def pmf(self, context: list[dict[str, Any]], actions: list[Action]) -> list[float]:
        """Probability of each action, in the order of `actions`."""
        return self.pmf_of(example_text(context, actions))

    def learn_from(self, example: str, chosen: int, cost: float, probability: float) -> None:
        """Learn that action `chosen` of an `example_text`, shown with `probability`, cost
        `cost` (= −reward)."""
        self._learn(self._labelled(example, chosen, cost, probability))

    def score_and_learn(
        self, example: str, chosen: int, cost: float, probability: float
    ) -> list[float]:
        """The pmf of an `example_text` as it was before learning it (progressive validation),
        then learn it as `learn_from` does."""
        examples = self._labelled(example, chosen, cost, probability)
        pmf = [0.0] * (len(examples) - 1)
        for index, value in self._predict_then_learn(examples):
            pmf[index] = float(value)
        return pmf

    def _labelled(self, example: str, chosen: int, cost: float, probability: float) -> list:
        """The parsed lines of an `example_text`, the line of action `chosen` labelled."""
        examples = self._parse(example)
        self._set_label(examples[chosen + 1], vw.CBLabel(label=(0, cost, probability)))
        return examples

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
