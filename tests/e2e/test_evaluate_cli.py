"""`decision-service evaluate` on the logs of a running server: the report files, the summary,
and clear errors for bad arguments."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest import ROOT, Server, rank_body

EVENTS = 300
POLICY = "--cb_explore_adf --epsilon 0.2 -l 0.5 --cb_type mtr -q ::"


def _evaluate(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "evaluate", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def logged(server: Server, database_url: str) -> str:
    rng = random.Random(5)
    with server.client() as client:
        for _ in range(EVENTS):
            user = rng.choice("xy")
            answer = client.post("/rank", json=rank_body(context=[{"user": {"t": user}}]))
            chosen = answer.json()["rewardActionId"]
            value = 1.0 if chosen == ("a0" if user == "x" else "a1") else 0.0
            reward = client.post(
                f"/events/{answer.json()['eventId']}/reward", json={"value": value}
            )
            assert reward.status_code == 204, reward.text
    with psycopg.connect(database_url, autocommit=True) as db:
        deadline = time.monotonic() + 30
        while db.execute("SELECT count(*) FROM joined").fetchone()[0] < EVENTS:
            assert time.monotonic() < deadline, "events did not become final"
            time.sleep(0.2)
    return database_url


def test_writes_report_json_and_html(logged: str, tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = _evaluate(
        logged, "--start", "2000-01-01", "--end", "2100-01-01",
        "--policy", f"fast={POLICY}", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "replay" in done.stderr and f"{EVENTS}/{EVENTS}" in done.stderr  # the progress bar
    assert f"{EVENTS} events; optimal policy:" in done.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["events"] == EVENTS
    names = [(p["name"], p["source"]) for p in report["policies"]]
    assert names == [
        ("Online", "Online"), ("Baseline", "Baseline"), ("Random", "Random"), ("fast", "Custom")
    ]  # fmt: skip
    assert report["policies"][3]["arguments"] == POLICY
    for policy in report["policies"]:
        assert policy["total"]["events"] == EVENTS
        assert policy["timeseries"]
    html = (out / "report.html").read_text()
    assert html.count("<svg") >= 4 and "series-line" in html
    assert "http://" not in html and "https://" not in html


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "yesterday", "--end", "2100-01-01"], "--start: not an ISO 8601"),
        (["--start", "2100-01-01", "--end", "2000-01-01"], "--start must be before --end"),
        (["--start", "2000-01-01", "--end", "2000-01-02"], "No final Online events"),
        (["--start", "2000-01-01", "--end", "2100-01-01", "--policy", "x"], "NAME="),
        (
            ["--start", "2000-01-01", "--end", "2100-01-01", "--policy", "x=--epsilon 0.1"],
            "--cb_explore_adf",
        ),
        (
            ["--start", "2000-01-01", "--end", "2100-01-01", "--policy", f"online={POLICY}"],
            "names must be unique",
        ),
    ],
)
def test_bad_arguments_exit_with_a_message(
    logged: str, tmp_path: Path, args: list[str], message: str
) -> None:
    done = _evaluate(logged, *args, "--out", str(tmp_path / "out"))
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "report.json").exists()
