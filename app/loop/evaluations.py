"""Offline evaluation jobs: replay a window of final events through fresh policies.

`evaluate` is the job itself (used by the server's job process and by `decision-service
evaluate`). In the server, the learner runs one job at a time in a child process
(`python -m app.loop.evaluations <id>`), so a long replay never stalls the event loop that serves
ranks; a job that dies is started again (the replay is deterministic), and after
`MAX_ATTEMPTS` starts the evaluation is marked Failed, so no evaluation stays Running forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from app import durations
from app.service_config import MIN_AUTO_FREQUENCY
from app.store import evaluations as store
from app.store import lease
from app.store.db import AsyncEngine, Connection, Engine, repeatable_read, sync_engine
from app.timestamps import iso
from policies.arguments import with_epsilon
from policies.evaluation_report import report
from policies.optimization import optimize
from policies.replay import PolicySpec, Replay

log = logging.getLogger(__name__)

OPTIMIZE_EVENTS = 50_000  # the newest events of the window the optimization search replays
OPTIMIZE_CANDIDATES = 24  # configurations the search may replay (the base included)
AUTO_WINDOW = timedelta(days=14)  # Personalizer's auto-optimization looked at two weeks
RUNNER_POLL_S = 5.0
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


class Runner:
    """The learner's job loop: one evaluation at a time, each in a child process; and, with
    auto-optimization on, an Auto evaluation every `autoOptimizationFrequency`."""

    def __init__(
        self,
        engine: AsyncEngine,
        database_url: str,
        document: Callable[[], dict[str, Any]],
        on_finished: Callable[[str], Awaitable[None]],
        term: Callable[[], lease.Term | None],
    ) -> None:
        self._engine = engine
        self._term = term
        self._database_url = database_url
        self._document = document
        self._on_finished = on_finished
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._running: str | None = None  # the evaluation the job process works on

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="evaluations")

    def wake(self) -> None:
        self._wake.set()

    def cancel(self, evaluation_id: str) -> None:
        """Stop the job of a deleted evaluation (its result would be discarded anyway)."""
        if self._process is not None and self._running == evaluation_id:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self._schedule_auto()
                while evaluation_id := await store.claim_next(self._engine, self._term()):
                    await self._run_one(evaluation_id)
                    await self._on_finished(evaluation_id)
            except asyncio.CancelledError:
                raise
            except lease.Deposed:
                return  # the learner steps down
            except Exception:
                log.exception("evaluation runner failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), RUNNER_POLL_S)
            self._wake.clear()

    async def _run_one(self, evaluation_id: str) -> None:
        term = self._term()
        if term is None:
            raise lease.Deposed("this process is not the learner")
        env = {
            **os.environ,
            JOB_URL_ENV: self._database_url,
            JOB_PARENT_ENV: str(os.getpid()),
            JOB_EPOCH_ENV: str(term.epoch),
        }
        self._running = evaluation_id
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app.loop.evaluations", evaluation_id, env=env
        )
        try:
            code = await self._process.wait()
        finally:
            if self._process.returncode is None:  # cancelled: the learner is stopping
                self._process.kill()
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._process.wait())
            self._process = self._running = None
        if code != 0:
            log.warning("evaluation job %s exited with %s; it will be retried", evaluation_id, code)

    async def _schedule_auto(self) -> None:
        document = self._document()
        if not document.get("isAutoOptimizationEnabled"):
            return
        now = datetime.now(UTC)
        begins = datetime.fromisoformat(str(document["autoOptimizationStartDate"]))
        if begins.tzinfo is None:
            begins = begins.replace(tzinfo=UTC)
        if now < begins:
            return
        every = max(durations.parse(str(document["autoOptimizationFrequency"])), MIN_AUTO_FREQUENCY)
        latest = await store.latest_auto(self._engine)
        if latest is not None and now - latest < every:
            return
        created = now.strftime("%Y%m%dT%H%M%S")
        term = self._term()
        if term is None:
            raise lease.Deposed("this process is not the learner")
        await store.create(
            self._engine,
            {
                "id": f"auto-{created}",
                "name": f"Auto optimization {created}",
                "start_time": now - AUTO_WINDOW,
                "end_time": now,
                "evaluation_type": "Auto",
                "request": {"policies": [], "optimize": True},
            },
            fenced_by=term,
        )


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
