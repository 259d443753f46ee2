"""Reward → model latency: from a reward's 204 to a rank served by a model that learned it.

Run on a quiet single-process service (the learner serves). Each trial ranks a probe (a new
eventId), reads the serving model's `eventsLearned` from `/healthz`, and sends a reward for
the probe; the clock starts when the reward is acknowledged (204). It then polls `/healthz`
back to back until `eventsLearned` has grown by one (the probe's event, the only one that can
become final meanwhile: the service's other decisions wait out their reward wait time) and
sends one more rank; the latency is that rank's answer minus the 204. Under the default
rules (aggregation "earliest") a reward makes its event final at once, so this is the path
commit → learner wake-up → join → learn → serve, plus one rank.
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

import httpx

RANK = "/personalizer/v1.0/rank"
REWARD = "/personalizer/v1.0/events/{}/reward"
KEY_HEADER = "Ocp-Apim-Subscription-Key"


def _probe(event_id: str) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "contextFeatures": [{"probe": {"day": "monday"}}],
        "actions": [{"id": f"a{a}", "features": [{"kind": f"k{a}"}]} for a in range(3)],
    }


def _learned(client: httpx.Client) -> int:
    return int(client.get("/healthz").json()["eventsLearned"])


def settle(url: str, quiet_s: float = 2.0, timeout_s: float = 120.0) -> None:
    """Wait until the serving model's `eventsLearned` has not moved for `quiet_s` seconds."""
    with httpx.Client(base_url=url, timeout=10.0) as client:
        deadline = time.monotonic() + timeout_s
        last, since = _learned(client), time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - since < quiet_s:
            time.sleep(0.2)
            now = _learned(client)
            if now != last:
                last, since = now, time.monotonic()


def measure(url: str, key: str, trials: int = 20, timeout_s: float = 10.0) -> dict[str, Any]:
    """Run `trials` probes against the service at `url`; latencies in ms."""
    latencies: list[float] = []
    polls: list[int] = []
    failures: list[str] = []
    with httpx.Client(base_url=url, headers={KEY_HEADER: key}, timeout=10.0) as client:
        for trial in range(trials):
            event_id = f"fresh-{uuid.uuid4()}"
            client.post(RANK, json=_probe(event_id)).raise_for_status()
            before = _learned(client)
            client.post(REWARD.format(event_id), json={"value": 1.0}).raise_for_status()
            acknowledged = time.perf_counter()
            n = 0
            while _learned(client) <= before:
                n += 1
                if time.perf_counter() - acknowledged > timeout_s:
                    failures.append(f"trial {trial}: not learned within {timeout_s:g} s")
                    break
            else:
                client.post(RANK, json=_probe(f"fresh-{uuid.uuid4()}")).raise_for_status()
                latencies.append((time.perf_counter() - acknowledged) * 1000)
                polls.append(n)
    ordered = sorted(latencies)
    return {
        "trials": trials,
        "learned": len(latencies),
        "median_ms": round(statistics.median(ordered), 1) if ordered else None,
        "p95_ms": round(ordered[max(0, round(0.95 * len(ordered)) - 1)], 1) if ordered else None,
        "max_ms": round(ordered[-1], 1) if ordered else None,
        "health_polls_median": statistics.median(polls) if polls else None,
        "failures": failures,
    }
