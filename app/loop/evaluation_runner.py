"""The learner's evaluation runner: one job at a time, each in a child process
(`python -m app.loop.evaluations <id>`), so a long replay never stalls the event loop that serves
ranks; a job that dies is started again (the replay is deterministic), and after `MAX_ATTEMPTS`
starts the evaluation is marked Failed, so no evaluation stays Running forever. With
auto-optimization on, it creates an Auto evaluation every `autoOptimizationFrequency`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from app import durations
from app.loop.evaluations import JOB_EPOCH_ENV, JOB_PARENT_ENV, JOB_URL_ENV
from app.service_config import MIN_AUTO_FREQUENCY
from app.store import evaluations as store
from app.store import lease
from app.store.db import AsyncEngine

log = logging.getLogger(__name__)

AUTO_WINDOW = timedelta(days=14)  # Personalizer's auto-optimization looked at two weeks
RUNNER_POLL_S = 5.0


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
