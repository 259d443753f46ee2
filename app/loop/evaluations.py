"""The offline evaluation job: replay a window of final events through fresh policies.

`evaluate` is the job itself (used by the server's job process and by `decision-service
evaluate`); `python -m app.loop.evaluations <id>` runs one stored evaluation to its end, the
child process that `app.loop.evaluation_runner.Runner` starts in the learner.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from app.store import evaluations as store
from app.store.db import Connection, Engine, repeatable_read, sync_engine
from app.timestamps import iso
from policies.arguments import with_epsilon
from policies.evaluation_report import report
from policies.optimization import optimize
from policies.replay import PolicySpec, Replay

log = logging.getLogger(__name__)

OPTIMIZE_EVENTS = 50_000  # the newest events of the window the optimization search replays
OPTIMIZE_CANDIDATES = 24  # configurations the search may replay (the base included)
JOB_URL_ENV = "DS_JOB_DATABASE_URL"
JOB_PARENT_ENV = "DS_JOB_PARENT_PID"
JOB_EPOCH_ENV = "DS_JOB_LEARNER_EPOCH"  # the epoch of the learner that started the job
PR_SET_PDEATHSIG = 1
FIXED = ("Online", "Baseline", "Random")  # the policies every evaluation compares


class NoEvents(ValueError):
    """The window holds no final event to evaluate on."""


Progress = Callable[[str, int, int], None]  # (stage, done, total)


def evaluate(
    conn: Connection,
    *,
    start: datetime,
    end: datetime,
    custom: list[dict[str, str]],
    optimization: bool,
    meta: dict[str, Any],
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The report of Online (the champion's arguments), Baseline, Random, each custom policy
    and (with `optimization`) the best optimized candidate, replayed over the window."""
    champion_id, champion_name, champion, exploration = store.champion_and_exploration(conn)
    total = store.count_window_sync(conn, start, end)
    if total == 0:
        raise NoEvents(f"No final Online events between {start.isoformat()} and {end.isoformat()}.")
    specs = [
        PolicySpec("Online", "Online", with_epsilon(champion, exploration)),
        PolicySpec("Baseline", "Baseline", None),
        PolicySpec("Random", "Random", None),
        *(
            PolicySpec(p["name"], "Custom", with_epsilon(p["arguments"], exploration))
            for p in custom
        ),
    ]
    optimized = None
    if optimization:
        sample = deque(store.window_events(conn, start, end), maxlen=OPTIMIZE_EVENTS)
        candidates = optimize(
            list(sample),
            champion,
            exploration,
            max_candidates=OPTIMIZE_CANDIDATES,
            progress=(lambda done, of: progress("optimize", done, of)) if progress else None,
        )
        if candidates:
            optimized = candidates[0]
            specs.append(
                PolicySpec(
                    optimized.name,
                    "OfflineExperimentation",
                    with_epsilon(optimized.arguments, exploration),
                )
            )
    replay = Replay(specs)
    if progress:
        progress("replay", 0, total)
    for done, event in enumerate(store.window_events(conn, start, end), 1):
        replay.add(event)
        if progress and (done % 1000 == 0 or done == total):
            progress("replay", done, total)
    data = report(replay.result(), meta=meta)
    # what the evidence was measured against, so it is not applied to another champion
    data["champion"] = {
        "id": champion_id,
        "name": champion_name,
        "arguments": champion,
        "exploration": exploration,
    }
    if optimized is not None:  # the gate corrects its bound for the candidates compared
        data["optimization"] = {"candidatesCompared": OPTIMIZE_CANDIDATES}
    for policy in data["policies"]:  # report the arguments as given, without the exploration
        if policy["source"] == "Online":
            policy["arguments"] = champion
        elif optimized is not None and policy["source"] == "OfflineExperimentation":
            policy["arguments"] = optimized.arguments
    for policy, given in zip(data["policies"][3:], custom, strict=False):
        policy["arguments"] = given["arguments"]
    return data


def evaluate_window(engine: Engine, *, read_only: bool = False, **kwargs: Any) -> dict[str, Any]:
    """`evaluate` in one REPEATABLE READ transaction, so both passes over the window (the
    optimization sample and the replay) read the same events."""
    with repeatable_read(engine, read_only) as conn:
        return evaluate(conn, **kwargs)


def meta_of(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "startTime": iso(row["start_time"]),
        "endTime": iso(row["end_time"]),
        "createdAt": iso(row["created_at"]),
        "evaluationType": row["evaluation_type"],
    }


def run_job(database_url: str, evaluation_id: str, epoch: int) -> None:
    """Run one stored evaluation to Succeeded or Failed (the job process's entry point); the
    result is stored only while the learner of `epoch` leads."""
    engine = sync_engine(database_url)
    try:
        with engine.begin() as conn:
            row = store.load_sync(conn, evaluation_id)
        if row is None or row["status"] != "Running":
            return
        request = row["request"]
        data, error = None, None
        try:
            data = evaluate_window(
                engine,
                start=row["start_time"],
                end=row["end_time"],
                custom=request.get("policies", []),
                optimization=bool(request.get("optimize")),
                meta=meta_of(row),
            )
        except NoEvents as exc:
            error = str(exc)
        except Exception as exc:
            log.exception("evaluation %s failed", evaluation_id)
            error = f"The evaluation failed: {exc}"
        with engine.begin() as conn:
            store.finish_sync(conn, epoch, evaluation_id, row["created_at"], data, error)
    finally:
        engine.dispose()


def _die_with_parent(parent: int) -> None:
    """A job must not outlive the learner that started it (a restarted learner re-runs it):
    ask Linux to kill this process when its parent dies, and exit if it already has."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        sys.exit(1)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    _die_with_parent(int(os.environ[JOB_PARENT_ENV]))
    run_job(os.environ[JOB_URL_ENV], sys.argv[1], int(os.environ[JOB_EPOCH_ENV]))
