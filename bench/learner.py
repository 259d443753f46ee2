"""Learner throughput: the service's `Learner.catch_up()` against raw vowpal-wabbit-next.

`python3 -m bench.learner [--events N] [--actions K] [--database-url URL] [--profile]`

Creates a fresh database `ds_bench_<random>` (on `--database-url`, else an embedded PostgreSQL),
fills it with N seeded synthetic final events (decisions + joined, nothing pending), then times,
alternating, three times each:
  A. learner: `Learner.catch_up()` — read joined ⋈ decisions from PostgreSQL in
     batches (the VW JSON text logged with each decision), parse, label and learn every event
     (`Policy` calls vowpal-wabbit-next's core directly, without its public wrappers);
  B. raw: vowpal-wabbit-next's public API alone on the same events in the same order —
     `parse_json` on the same JSON strings held in memory, `set_label`, `learn_one` (no
     database).
Prints the medians against the targets, checks both models end identical, drops the database.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import hashlib
import json
import os
import pstats
import random
import shlex
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import vowpal_wabbit_next as vw
from sqlalchemy.ext.asyncio import AsyncEngine

from app.loop.learner import LEARN_BATCH, Learner
from app.service_config import Rules, defaults
from app.serving import PolicyModel, Registry
from app.store import configuration, lease
from app.store.db import async_engine, migrate
from bench.database import DEFAULT_URL, fresh_database, postgres_server
from policies.arguments import DEFAULT_ARGUMENTS, DEFAULT_POLICY_NAME, with_epsilon
from policies.features import Action
from policies.ranking import lesson
from policies.vw import Policy, example_text

DESCRIPTION = "Learner throughput: Learner.catch_up() against raw vowpal-wabbit-next."
TARGET_RATE = 10_000.0
TARGET_RATIO = 0.5
RUNS = 3
SEED = 20240601
EPSILON = 0.2
USER_TYPES = ("student", "professional", "retired", "teacher")
DEVICES = ("mobile", "desktop", "tablet")
TOPICS = ("politics", "sports", "science", "fun", "travel", "food", "music")

Stream = list[tuple[str, int, float, float]]  # (VW JSON, chosen position, cost, probability)


# -- synthetic events -------------------------------------------------------------------------


def generate(n: int, k: int, policy_id: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Seeded rows for `decisions` and `joined` (Online mode, logged epsilon-greedy draws)."""
    rng = random.Random(SEED)
    start = datetime.now(UTC) - timedelta(days=1)
    decisions: list[tuple[Any, ...]] = []
    joined: list[tuple[Any, ...]] = []
    for i in range(n):
        event_id = f"{rng.getrandbits(128):032x}"
        user = rng.randrange(len(USER_TYPES))
        context = [
            {"user": {"type": USER_TYPES[user], "age": rng.randint(18, 80)}},
            {"device": rng.choice(DEVICES)},
        ]
        actions = []
        for a in range(k):
            features: dict[str, Any] = {"topic": TOPICS[a % len(TOPICS)], "length": rng.random()}
            if rng.random() < 0.5:
                features["fresh"] = True
            actions.append({"id": f"action-{a}", "features": [features]})
        pmf = [EPSILON / k] * k
        pmf[rng.randrange(k)] += 1 - EPSILON
        chosen = rng.choices(range(k), weights=pmf)[0]
        reward = 1.0 if rng.random() < (0.7 if chosen == user % k else 0.2) else 0.0
        order = [chosen] + [a for a in range(k) if a != chosen]
        ranking = [{"id": actions[a]["id"], "probability": pmf[a]} for a in order]
        created = start + timedelta(milliseconds=i)
        example = example_text(context, [Action(a["id"], a["features"]) for a in actions])
        decisions.append((
            event_id, created, hashlib.sha256(event_id.encode()).hexdigest(),
            json.dumps(context), json.dumps(actions), "[]", json.dumps(ranking),
            chosen, pmf[chosen], chosen, pmf[chosen], example, chosen, chosen, policy_id,
            DEFAULT_POLICY_NAME, f"{policy_id}.0", "Online", False,
        ))  # fmt: skip
        reason, count = ("reward", 1) if reward else ("default", 0)
        joined.append(
            (i + 1, event_id, reward, True, reason, count, created + timedelta(seconds=1))
        )
    return decisions, joined


def insert(url: str, decisions: list[tuple[Any, ...]], joined: list[tuple[Any, ...]]) -> None:
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY decisions (event_id, created_at, request_hash, context, actions, excluded,"
            " ranking, reward_action, probability, policy_action, policy_probability, example,"
            " reward_position, policy_position, policy_id, policy_name, model_version,"
            " learning_mode, deferred) FROM STDIN"
        ) as copy:
            for row in decisions:
                copy.write_row(row)
        with cur.copy(
            "COPY joined (seq, event_id, reward, learn, reason, reward_count, joined_at) FROM STDIN"
        ) as copy:
            for row in joined:
                copy.write_row(row)
        cur.execute("DELETE FROM pending")
        cur.execute("SELECT setval('joined_seq', %s)", (len(joined),))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE decisions, joined")


def raw_stream(url: str) -> Stream:
    """The joined stream as the learner reads it, held in memory for the raw run (not timed)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT j.reward, d.example, d.reward_position, d.probability, d.policy_position,"
            " d.policy_probability, d.learning_mode FROM joined j"
            " JOIN decisions d USING (event_id) WHERE j.learn ORDER BY j.seq"
        ).fetchall()
    stream: Stream = []
    for reward, example, position, p, policy_position, pp, mode in rows:
        taught = lesson(
            learning_mode=mode,
            reward_position=position,
            probability=p,
            policy_position=policy_position,
            policy_probability=pp,
            reward=reward,
        )
        assert taught is not None
        stream.append((example, *taught))
    return stream


# -- the two measurements ---------------------------------------------------------------------


def new_learner(engine: AsyncEngine) -> Learner:
    # a fresh database, where no learner was ever elected: the epoch is still 0
    term = lease.Term(epoch=0, lease_s=60.0)
    rules = Rules.of(defaults())
    return Learner(engine, lambda: rules, 3, 1.0, Registry(engine, lambda: rules), lambda: term)


def served_model(learner: Learner) -> PolicyModel:
    """The model the learner serves (its champion's)."""
    return next(m for m in learner.models.values() if m.row.role == "champion")


async def run_learner(engine: AsyncEngine) -> tuple[float, Learner]:
    learner = new_learner(engine)
    gc.collect()
    start = time.perf_counter()
    await learner.catch_up()
    return time.perf_counter() - start, learner


def run_raw(arguments: str, stream: Stream) -> tuple[float, vw.Workspace]:
    workspace = vw.Workspace([*shlex.split(arguments), "--quiet"])
    parser = vw.JsonFormatParser(workspace)
    gc.collect()
    start = time.perf_counter()
    for document, chosen, cost, probability in stream:
        examples = parser.parse_json(document)
        examples[chosen + 1].set_label(vw.CBLabel(label=(0, cost, probability)))
        workspace.learn_one(examples)
    return time.perf_counter() - start, workspace


def same_model(arguments: str, learner: Learner, raw: vw.Workspace, k: int) -> str:
    """Byte equality of the two models and the largest pmf difference on a few probes."""
    served = served_model(learner).policy
    same = served.to_bytes() == raw.serialize()  # before any predict: predicting moves counters
    replica = Policy.from_bytes(arguments, raw.serialize())
    actions = [Action(f"action-{a}", [{"topic": TOPICS[a % len(TOPICS)]}]) for a in range(k)]
    diff = 0.0
    for user in USER_TYPES:
        for device in DEVICES[:2]:
            context = [{"user": {"type": user, "age": 40}}, {"device": device}]
            a, b = served.pmf(context, actions), replica.pmf(context, actions)
            diff = max(diff, *(abs(x - y) for x, y in zip(a, b, strict=True)))
    return f"model bytes {'identical' if same else 'DIFFER'}, pmf max |Δ| {diff:.3g} (8 probes)"


# -- where the learner's time goes (--profile) ------------------------------------------------


async def profile(engine: AsyncEngine, arguments: str, n: int) -> None:
    learner = new_learner(engine)
    profiler = cProfile.Profile()
    profiler.enable()
    await learner.catch_up()
    profiler.disable()
    print("\ncProfile of Learner.catch_up(), top 20 by own time:")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


# -- main -------------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


async def measure(url: str, n: int, k: int, with_profile: bool = False) -> dict[str, Any]:
    """Set up N events on the (empty) database at `url`, time A and B; the figures."""
    t = time.perf_counter()
    migrate(url)
    engine = async_engine(url)
    try:
        await configuration.ensure_defaults(
            engine, defaults(), DEFAULT_POLICY_NAME, DEFAULT_ARGUMENTS
        )
        champion = await configuration.champion(engine)
        insert(url, *generate(n, k, champion.id))
        arguments = with_epsilon(champion.arguments, Rules.of(defaults()).exploration)
        stream = raw_stream(url)
        print(f"setup (not measured): {time.perf_counter() - t:.1f} s; VW arguments: {arguments}")
        learner_s: list[float] = []
        raw_s: list[float] = []
        for _ in range(RUNS):
            elapsed, learner = await run_learner(engine)
            assert served_model(learner).events_learned == n
            learner_s.append(elapsed)
            elapsed, raw = run_raw(arguments, stream)
            raw_s.append(elapsed)
        check = same_model(arguments, learner, raw, k)
        if with_profile:
            await profile(engine, arguments, n)
    finally:
        await engine.dispose()
    learner_rate = n / statistics.median(learner_s)
    raw_rate = n / statistics.median(raw_s)
    return {
        "events": n,
        "actions": k,
        "arguments": arguments,
        "learner_s": learner_s,
        "raw_s": raw_s,
        "learner_events_per_s": round(learner_rate),
        "raw_events_per_s": round(raw_rate),
        "ratio": round(learner_rate / raw_rate, 3),
        "same_model": check,
        "pass": learner_rate >= TARGET_RATE and learner_rate / raw_rate >= TARGET_RATIO,
    }


def report(figures: dict[str, Any]) -> None:
    n, k = figures["events"], figures["actions"]
    learner_s, raw_s = figures["learner_s"], figures["raw_s"]
    learner_rate, raw_rate = figures["learner_events_per_s"], figures["raw_events_per_s"]
    ratio = figures["ratio"]
    print(
        "\nA learner = Learner.catch_up(): SELECT joined JOIN decisions from PostgreSQL"
        f"\n  in batches of {LEARN_BATCH} (the logged VW JSON text), parse, label,"
        "\n  predict then learn (the pmf before learning is kept as the score), calling"
        "\n  vowpal-wabbit-next's core directly (the service's code path)"
        "\nB raw     = vowpal-wabbit-next's public API only, same events and order: parse_json"
        "\n  on the same JSON strings in memory + set_label + learn_one (no database)"
        f"\nmedian of {RUNS} alternating runs; seconds: learner "
        + " ".join(f"{s:.3f}" for s in learner_s)
        + ", raw "
        + " ".join(f"{s:.3f}" for s in raw_s)
    )
    rows = [
        ("events", f"{n:,}", "", ""),
        ("actions", f"{k}", "", ""),
        ("learner events/s", f"{learner_rate:,.0f}", f">= {TARGET_RATE:,.0f}",
         _verdict(learner_rate >= TARGET_RATE)),
        ("raw events/s", f"{raw_rate:,.0f}", "", ""),
        ("ratio learner/raw", f"{ratio:.2f}", f">= {TARGET_RATIO:.2f}",
         _verdict(ratio >= TARGET_RATIO)),
    ]  # fmt: skip
    print(f"\n{'metric':<18} {'value':>10}  {'target':<10} result")
    for name, value, target, verdict in rows:
        print(f"{name:<18} {value:>10}  {target:<10} {verdict}".rstrip())
    print(f"same model: {figures['same_model']}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python3 -m bench.learner", description=DESCRIPTION)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--actions", type=int, default=5)
    parser.add_argument(
        "--database-url", default=os.environ.get("DS_BENCH_DATABASE_URL", DEFAULT_URL)
    )
    parser.add_argument("--profile", action="store_true", help="also show where the time goes")
    args = parser.parse_args()
    if args.events < 1 or not 1 <= args.actions <= 50:
        parser.error("--events must be at least 1 and --actions between 1 and 50")
    with postgres_server(args.database_url) as server, fresh_database(server) as url:
        report(asyncio.run(measure(url, args.events, args.actions, args.profile)))


if __name__ == "__main__":
    main()
