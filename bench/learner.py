"""Learner throughput: the service's `Learner.load(catch_up=True)` against raw vowpal-wabbit-next.

`python3 -m bench.learner [--events N] [--actions K] [--database-url URL] [--profile]`

Creates a fresh database `ds_bench_<random>` (on `--database-url`, else an embedded PostgreSQL),
fills it with N seeded synthetic final events (decisions + joined, nothing pending), then times,
alternating, three times each:
  A. learner: `Learner.load(catch_up=True)` — read joined ⋈ decisions from PostgreSQL in
     batches, rebuild the actions, build the VW JSON, parse, label and learn every event;
  B. raw: vowpal-wabbit-next alone on the same events in the same order — `parse_json` on
     pre-built JSON strings, `set_label`, `learn_one` (no database, no JSON building).
Prints the medians against the targets, checks both models end identical, drops the database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import hashlib
import json
import os
import pstats
import random
import shlex
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
import vowpal_wabbit_next as vw
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.configuration import DEFAULT_POLICY_NAME
from app.loop.learner import LEARN_BATCH, Learner
from app.service_config import Rules, defaults
from app.store import configuration, joins
from app.store.db import async_engine, migrate, start_embedded
from policies.arguments import DEFAULT_ARGUMENTS, with_epsilon
from policies.features import Action, vw_document
from policies.ranking import learning_example
from policies.vw import Policy

DESCRIPTION = "Learner throughput: Learner.load(catch_up=True) against raw vowpal-wabbit-next."
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
TARGET_RATE = 10_000.0
TARGET_RATIO = 0.5
RUNS = 3
SEED = 20240601
EPSILON = 0.2
USER_TYPES = ("student", "professional", "retired", "teacher")
DEVICES = ("mobile", "desktop", "tablet")
TOPICS = ("politics", "sports", "science", "fun", "travel", "food", "music")

TEXT_QUERY = sa.text(
    "SELECT j.seq, j.reward, j.learn, d.context::text, d.actions::text, d.excluded::text,"
    " d.reward_action, d.probability, d.policy_action, d.policy_probability, d.learning_mode"
    " FROM joined j JOIN decisions d ON d.event_id = j.event_id"
    " WHERE j.seq > :cursor ORDER BY j.seq LIMIT :limit"
)
Stream = list[tuple[str, int, float, float]]  # (VW JSON, chosen position, cost, probability)


# -- database ---------------------------------------------------------------------------------


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


@contextlib.contextmanager
def postgres_server(url: str) -> Iterator[str]:
    """`url` if it answers, else an embedded PostgreSQL in a temporary directory."""
    try:
        with psycopg.connect(_libpq(url), connect_timeout=3):
            pass
    except psycopg.Error:
        print(f"{url.split('@')[-1]} unreachable: starting an embedded PostgreSQL")
        with tempfile.TemporaryDirectory(prefix="ds-bench-pg-") as tmp:
            embedded, handle = start_embedded(Path(tmp))
            try:
                yield embedded
            finally:
                handle.cleanup()
        return
    yield _libpq(url)


@contextlib.contextmanager
def fresh_database(server: str) -> Iterator[str]:
    name = f"ds_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(server, name)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
        decisions.append((
            event_id, created, hashlib.sha256(event_id.encode()).hexdigest(),
            json.dumps(context), json.dumps(actions), "[]", json.dumps(ranking),
            chosen, pmf[chosen], chosen, pmf[chosen], policy_id, DEFAULT_POLICY_NAME,
            f"{policy_id}.0", "Online", False,
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
            " ranking, reward_action, probability, policy_action, policy_probability, policy_id,"
            " policy_name, model_version, learning_mode, deferred) FROM STDIN"
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
    """The joined stream as the learner reads it, pre-built into VW JSON strings (not timed)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT j.reward, d.context, d.actions, d.excluded, d.reward_action, d.probability,"
            " d.policy_action, d.policy_probability, d.learning_mode FROM joined j"
            " JOIN decisions d USING (event_id) WHERE j.learn ORDER BY j.seq"
        ).fetchall()
    stream: Stream = []
    for reward, context, actions, excluded, reward_action, p, policy_action, pp, mode in rows:
        example = learning_example(
            learning_mode=mode,
            actions=[Action(a["id"], a["features"]) for a in actions],
            excluded=set(excluded),
            reward_action=reward_action,
            probability=p,
            policy_action=policy_action,
            policy_probability=pp,
            reward=reward,
        )
        assert example is not None
        sub, chosen, cost, probability = example
        stream.append((json.dumps(vw_document(context, sub)), chosen, cost, probability))
    return stream


# -- the two measurements ---------------------------------------------------------------------


def new_learner(engine: AsyncEngine) -> Learner:
    return Learner(engine, lambda: Rules.of(defaults()), snapshots_kept=3, join_interval=1.0)


async def run_learner(engine: AsyncEngine) -> tuple[float, Learner]:
    learner = new_learner(engine)
    gc.collect()
    start = time.perf_counter()
    await learner.load(catch_up=True)
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
    assert learner.serving is not None
    served = learner.serving.policy
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


async def phases(engine: AsyncEngine, arguments: str) -> dict[str, float]:
    """The learner's loop split by hand: seconds in each step, over the whole stream."""
    workspace = vw.Workspace([*shlex.split(arguments), "--quiet"])
    parser = vw.JsonFormatParser(workspace)
    spent = dict.fromkeys(("fetch", "rebuild", "dumps", "parse", "label+learn"), 0.0)
    cursor, clock = 0, time.perf_counter
    while True:
        t = clock()
        events = await joins.joined_after(engine, cursor, LEARN_BATCH)
        spent["fetch"] += clock() - t
        for event in events:
            t0 = clock()
            example = learning_example(
                learning_mode=event["learning_mode"],
                actions=[Action(a["id"], a["features"]) for a in event["actions"]],
                excluded=set(event["excluded"]),
                reward_action=event["reward_action"],
                probability=event["probability"],
                policy_action=event["policy_action"],
                policy_probability=event["policy_probability"],
                reward=event["reward"],
            )
            assert example is not None
            sub, chosen, cost, probability = example
            t1 = clock()
            document = json.dumps(vw_document(event["context"], sub))
            t2 = clock()
            examples = parser.parse_json(document)
            t3 = clock()
            examples[chosen + 1].set_label(vw.CBLabel(label=(0, cost, probability)))
            workspace.learn_one(examples)
            t4 = clock()
            spent["rebuild"] += t1 - t0
            spent["dumps"] += t2 - t1
            spent["parse"] += t3 - t2
            spent["label+learn"] += t4 - t3
            cursor = event["seq"]
        if len(events) < LEARN_BATCH:
            return spent


async def fetch_undecoded(engine: AsyncEngine) -> float:
    """Seconds to read the same batches with the JSONB columns as text (no JSON decoding)."""
    cursor, start = 0, time.perf_counter()
    while True:
        async with engine.connect() as conn:
            result = await conn.execute(TEXT_QUERY, {"cursor": cursor, "limit": LEARN_BATCH})
            rows = [dict(r) for r in result.mappings().all()]
        if len(rows) < LEARN_BATCH:
            return time.perf_counter() - start
        cursor = rows[-1]["seq"]


async def profile(engine: AsyncEngine, arguments: str, n: int) -> None:
    spent = await phases(engine, arguments)
    total = sum(spent.values())
    print(f"\nlearner loop by phase ({n} events, timed by hand, no profiler):")
    for name, seconds in spent.items():
        print(f"  {name:<12} {seconds:7.3f} s  {seconds / total:6.1%}  {n / seconds:>10,.0f} ev/s")
    print(f"  {'total':<12} {total:7.3f} s  {'':6}  {n / total:>10,.0f} ev/s")
    undecoded = await fetch_undecoded(engine)
    print(
        f"  (fetch = joins.joined_after incl. JSONB decoding; the same rows with jsonb::text take"
        f" {undecoded:.3f} s, {n / undecoded:,.0f} ev/s)"
    )
    learner = new_learner(engine)
    profiler = cProfile.Profile()
    profiler.enable()
    await learner.load(catch_up=True)
    profiler.disable()
    print("\ncProfile of Learner.load(catch_up=True), top 20 by own time:")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


# -- main -------------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


async def bench(url: str, n: int, k: int, with_profile: bool) -> None:
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
            assert learner.serving is not None and learner.serving.events_learned == n
            learner_s.append(elapsed)
            elapsed, raw = run_raw(arguments, stream)
            raw_s.append(elapsed)
        check = same_model(arguments, learner, raw, k)
        report(n, k, learner_s, raw_s, check)
        if with_profile:
            await profile(engine, arguments, n)
    finally:
        await engine.dispose()


def report(n: int, k: int, learner_s: list[float], raw_s: list[float], check: str) -> None:
    learner_rate = n / statistics.median(learner_s)
    raw_rate = n / statistics.median(raw_s)
    ratio = learner_rate / raw_rate
    print(
        "\nA learner = Learner.load(catch_up=True): SELECT joined JOIN decisions from PostgreSQL"
        f"\n  in batches of {LEARN_BATCH}, rebuild actions, build + json.dumps the VW document,"
        "\n  parse, label, learn_one (the service's code path)"
        "\nB raw     = vowpal-wabbit-next only, same events and order: parse_json on pre-built"
        "\n  JSON strings + set_label + learn_one (no database, no JSON building)"
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
    print(f"same model: {check}")


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
        asyncio.run(bench(url, args.events, args.actions, args.profile))


if __name__ == "__main__":
    main()
