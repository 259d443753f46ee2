"""The processes a benchmark drives: the real service, the no-database reference, the lean one.

Each runs as its own process group (uvicorn's parent and, with `workers` > 1, its worker
processes), found by port, waited for until it answers, and stopped with SIGTERM (SIGKILL when
it does not go). `rss_mb` reads each process's peak resident set (VmHWM) from /proc.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

API_KEY = "bench-key"
ADMIN_KEY = "bench-admin-key"
START_TIMEOUT_S = 600.0  # a learner catching up on a large log answers only when it is done


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pids(self) -> list[int]:
        """The parent and its children (uvicorn's worker processes), not PostgreSQL's."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            kids = [int(p) for p in children.read_text().split()]
        except OSError:
            kids = []
        return [self.process.pid, *kids]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _spawn(name: str, argv: list[str], env: dict[str, str], log: Path, health: str) -> Server:
    port = int(argv[argv.index("--port") + 1])
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(name, process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}; see {log}")
        try:
            if health_ok(server.url + health):
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{name} did not answer within {START_TIMEOUT_S:.0f} s; see {log}")


def health_ok(url: str) -> bool:
    response = httpx.get(url, timeout=2.0)
    return response.status_code in (200, 401, 405)


def start_service(database_url: str, workers: int, data_dir: Path, log: Path) -> Server:
    """`decision-service serve` on `database_url` (already created) with `workers` processes."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DS_API_KEY": API_KEY,
        "DS_ADMIN_KEY": ADMIN_KEY,
    }
    argv = [
        sys.executable, "-m", "app.cli", "serve", "--port", str(free_port()),
        "--workers", str(workers), "--data-dir", str(data_dir), "--log-level", "warning",
    ]  # fmt: skip
    return _spawn(f"service ({workers} worker{'s' * (workers > 1)})", argv, env, log, "/healthz")


def start_reference(workers: int, log: Path) -> Server:
    """`bench.reference`: the same rank handling with nothing logged."""
    argv = [
        sys.executable, "-m", "bench.reference", "--port", str(free_port()),
        "--workers", str(workers), "--key", API_KEY, "--log-level", "warning",
    ]  # fmt: skip
    # GET on the POST-only route: 405 once it serves
    return _spawn(
        f"reference ({workers} worker{'s' * (workers > 1)})",
        argv,
        dict(os.environ),
        log,
        "/personalizer/v1.0/rank",
    )


def start_lean(workers: int, log: Path) -> Server:
    """`bench.lean`: the useful VW work of a rank, nothing else."""
    argv = [
        sys.executable, "-m", "bench.lean", "--port", str(free_port()),
        "--workers", str(workers), "--log-level", "warning",
    ]  # fmt: skip
    return _spawn(
        f"lean ({workers} worker{'s' * (workers > 1)})",
        argv,
        dict(os.environ),
        log,
        "/personalizer/v1.0/rank",
    )


def run_load(url: str, *args: str) -> dict[str, Any]:
    """One `bench.load` run in its own process against `url`; its JSON figures."""
    argv = [sys.executable, "-m", "bench.load", "--url", url, "--key", API_KEY, "--json", *args]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def rss_mb(pid: int) -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident memory of `pid`, MB."""
    figures: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            figures["rss_mb" if key == "VmRSS" else "peak_rss_mb"] = int(value.split()[0]) / 1024
    return figures
