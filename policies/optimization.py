"""Policy optimization: search VW arguments that would have done better on the logged events.

Personalizer's optimization discovery (MWT `Experimentation.py`), kept small and deterministic.
Each candidate is replayed blank with progressive validation (pmf before learning each event,
exploration `epsilon` applied); its value is the IPS estimate of that policy. A stage keeps a
change only when it beats the best value so far:
- "Hyper1": learning rate `-l` × `--cb_type` {ips, mtr} on the base arguments;
- "Inter-len": interaction sets on the best so far: none, `-q ::` and each shared × action
  namespace pair, then greedy add-one pair until no improvement;
- "Hyper2": `--power_t` {0, 0.5} × the learning rate around the best.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import product

import vowpal_wabbit_next as vw

from policies.arguments import ArgumentsError, validate, with_epsilon
from policies.command_line import option_values, with_option, without_option
from policies.estimators import IPS, SNIPS
from policies.replay import LoggedEvent, PolicySpec, Replay

LEARNING_RATES = (1e-3, 1e-2, 0.1, 0.5)
CB_TYPES = ("ips", "mtr")
POWER_TS = (0.0, 0.5)
VW_LEARNING_RATE = 0.5  # VW's default `-l`
NAMESPACE_SAMPLE = 1000  # events inspected for namespace names


@dataclass(frozen=True)
class Candidate:
    name: str
    arguments: str  # as given (no exploration applied), like base_arguments
    value: float  # IPS estimate
    snips: float


def optimize(
    events: Sequence[LoggedEvent],
    base_arguments: str,
    epsilon: float,
    *,
    max_candidates: int = 24,
    progress: Callable[[int, int], None] | None = None,
) -> list[Candidate]:
    """The stage winners ("Hyper1", "Inter-len1", …, "Hyper2"), best first, each arguments
    once. At most `max_candidates` configurations are replayed (the base included)."""
    if not events:
        return []
    search = _Search(events, epsilon, max_candidates, progress)
    try:
        base = search.score(validate(base_arguments))
    except ArgumentsError:  # a champion stored under older rules: no candidate can be valid
        return []
    if base is None:
        return []
    winners: list[tuple[str, tuple[str, float, float]]] = []

    best = search.best([base, *search.grid(base[0], LEARNING_RATES, CB_TYPES, None)])
    winners.append(("Hyper1", best))

    by_length: dict[int, tuple[str, float, float]] = {}
    start = best
    shared, actions = namespaces(events[:NAMESPACE_SAMPLE])
    pairs = [s + a for s in shared for a in actions]
    current, current_terms = best, None
    for terms in [(), ("::",), *((p,) for p in pairs)]:
        scored = search.score(_with_interactions(start[0], terms))
        if scored is not None:
            if terms:
                by_length[len(terms)] = search.best([by_length.get(len(terms)), scored])
            if scored[1] > current[1]:
                current, current_terms = scored, terms
    while current_terms and current_terms != ("::",):
        grown = [
            (search.score(_with_interactions(start[0], (*current_terms, p))), (*current_terms, p))
            for p in pairs
            if p not in current_terms
        ]
        grown = [(s, t) for s, t in grown if s is not None]
        if not grown:
            break
        scored, terms = max(grown, key=lambda item: item[0][1])  # first of equals
        by_length[len(terms)] = search.best([by_length.get(len(terms)), scored])
        if scored[1] <= current[1]:
            break
        current, current_terms = scored, terms
    winners.extend((f"Inter-len{n}", by_length[n]) for n in sorted(by_length))
    best = current

    rate = _learning_rate(best[0])
    rates = (rate, rate / 3, rate * 3)
    best = search.best([best, *search.grid(best[0], rates, None, POWER_TS)])
    winners.append(("Hyper2", best))

    seen: set[str] = set()
    candidates = []
    for name, (arguments, value, snips) in winners:
        if arguments not in seen:
            seen.add(arguments)
            candidates.append(Candidate(name, arguments, value, snips))
    return sorted(candidates, key=lambda c: -c.value)


class _Search:
    """Replays candidates (each arguments once, at most `limit` of them)."""

    def __init__(
        self,
        events: Sequence[LoggedEvent],
        epsilon: float,
        limit: int,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        self.events, self.epsilon, self.limit, self.progress = events, epsilon, limit, progress
        self.scores: dict[str, tuple[str, float, float] | None] = {}
        self.count = 0

    def score(self, arguments: str) -> tuple[str, float, float] | None:
        """(arguments, IPS, SNIPS), or None when invalid or over the budget."""
        if arguments in self.scores:
            return self.scores[arguments]
        if self.count >= self.limit:
            return None
        try:
            validate(arguments)
        except ArgumentsError:
            self.scores[arguments] = None
            return None
        spec = PolicySpec(
            "candidate", "OfflineExperimentation", with_epsilon(arguments, self.epsilon)
        )
        replay = Replay([spec], reward_model_arguments=None)
        for event in self.events:
            replay.add(event)
        feedback = replay.result().feedback(0)
        value = float(IPS().estimate_policy_value(**feedback))
        snips = float(SNIPS().estimate_policy_value(**feedback))
        self.scores[arguments] = (arguments, value, snips)
        self.count += 1
        if self.progress is not None:
            self.progress(self.count, self.limit)
        return self.scores[arguments]

    def grid(
        self,
        arguments: str,
        rates: Sequence[float],
        cb_types: Sequence[str] | None,
        power_ts: Sequence[float] | None,
    ) -> list[tuple[str, float, float] | None]:
        tokens = shlex.split(arguments)
        scored = []
        for rate, cb_type, power_t in product(rates, cb_types or [None], power_ts or [None]):
            changed = with_option(tokens, "learning_rate", "l", f"{rate:g}")
            if cb_type is not None:
                changed = with_option(changed, "cb_type", None, cb_type)
            if power_t is not None:
                changed = with_option(changed, "power_t", None, f"{power_t:g}")
            scored.append(self.score(" ".join(changed)))
        return scored

    @staticmethod
    def best(scored: Sequence[tuple[str, float, float] | None]) -> tuple[str, float, float]:
        """The highest value; the first of equals."""
        present = [s for s in scored if s is not None]
        return max(present, key=lambda s: s[1])


def namespaces(events: Sequence[LoggedEvent]) -> tuple[list[str], list[str]]:
    """First letters of the shared and of the action namespaces found in the events."""
    workspace = vw.Workspace(["--cb_adf", "--quiet"])
    parser = vw.JsonFormatParser(workspace)
    shared: set[str] = set()
    actions: set[str] = set()
    for event in events:
        examples = parser.parse_json(event.example)
        shared.update(_letters(examples[0]))
        for example in examples[1:]:
            actions.update(_letters(example))
    return sorted(shared), sorted(actions)


def _letters(example: vw.Example) -> list[str]:
    # index 128 is VW's constant namespace; -q takes printable first letters
    return [chr(i) for i in example.feat_group_indices if i < 128 and chr(i).isalnum()]


def _with_interactions(arguments: str, terms: Sequence[str]) -> str:
    """`arguments` with exactly the `-q` terms `terms` (unchanged when it has them already)."""
    tokens = shlex.split(arguments)
    if option_values(tokens, "quadratic", "q") == list(terms) and not option_values(
        tokens, "interactions"
    ):
        return arguments
    tokens = without_option(without_option(tokens, "quadratic", "q"), "interactions")
    for term in terms:
        tokens += ["-q", term]
    return " ".join(tokens)


def _learning_rate(arguments: str) -> float:
    rates = option_values(shlex.split(arguments), "learning_rate", "l")
    return float(rates[-1]) if rates else VW_LEARNING_RATE
