"""Settings: every environment variable and flag, with its default and a one-line doc.

The README's configuration table is checked against `FIELDS` by a test.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path


def _doc(env: str | None, flag: str | None, text: str) -> dict[str, str | None]:
    return {"env": env, "flag": flag, "doc": text}


@dataclass(frozen=True)
class Settings:
    host: str = field(
        default="127.0.0.1", metadata=_doc("DS_HOST", "--host", "Address the HTTP server binds.")
    )
    port: int = field(
        default=8000, metadata=_doc("DS_PORT", "--port", "TCP port of the HTTP server.")
    )
    workers: int = field(
        default=1,
        metadata=_doc(
            "DS_WORKERS",
            "--workers",
            "API processes; one of them is elected learner through PostgreSQL.",
        ),
    )
    data_dir: Path = field(
        default=Path("./var"),
        metadata=_doc(
            "DS_DATA_DIR",
            "--data-dir",
            "Where the embedded PostgreSQL and the generated keys live.",
        ),
    )
    database_url: str | None = field(
        default=None,
        metadata=_doc(
            "DATABASE_URL",
            None,
            "PostgreSQL URL (`postgresql://…` or `postgresql+psycopg://…`); unset: embedded.",
        ),
    )
    api_key: str | None = field(
        default=None,
        metadata=_doc(
            "DS_API_KEY",
            None,
            "Key for rank/reward/activate; unset: generated once, kept in the data dir.",
        ),
    )
    admin_key: str | None = field(
        default=None,
        metadata=_doc(
            "DS_ADMIN_KEY",
            None,
            "Key for everything, configuration included; unset: generated like the API key.",
        ),
    )
    max_body_bytes: int = field(
        default=1024 * 1024,
        metadata=_doc("DS_MAX_BODY_BYTES", None, "Largest request body accepted (bytes)."),
    )
    max_model_bytes: int = field(
        default=256 * 1024 * 1024,
        metadata=_doc("DS_MAX_MODEL_BYTES", None, "Largest model accepted by PUT model (bytes)."),
    )
    db_timeout: float = field(
        default=10.0,
        metadata=_doc(
            "DS_DB_TIMEOUT",
            None,
            "Seconds a call waits for its commit before it is answered 503.",
        ),
    )
    join_interval: float = field(
        default=0.5,
        metadata=_doc(
            "DS_JOIN_INTERVAL",
            None,
            "Seconds between the learner's scans for events whose wait time has closed.",
        ),
    )
    learner_lease: float = field(
        default=3.0,
        metadata=_doc(
            "DS_LEARNER_LEASE",
            None,
            "Seconds of silence after which the database ends the learner's session (a paused "
            "learner loses the lead; another process takes it within about a second more).",
        ),
    )
    snapshots_kept: int = field(
        default=3,
        metadata=_doc("DS_SNAPSHOTS_KEPT", None, "Model snapshots kept per policy (newest)."),
    )
    promotion_min_events: int = field(
        default=10_000,
        metadata=_doc(
            "DS_PROMOTION_MIN_EVENTS",
            None,
            "Final events both policies must have scored before a promotion is considered.",
        ),
    )
    promotion_min_lift: float = field(
        default=0.0,
        metadata=_doc(
            "DS_PROMOTION_MIN_LIFT",
            None,
            "Gain in expected reward the 95% lower bound of (challenger − champion) must exceed.",
        ),
    )
    promotion_min_ess: float = field(
        default=1_000.0,
        metadata=_doc(
            "DS_PROMOTION_MIN_ESS",
            None,
            "Smallest effective sample size of the challenger's importance weights.",
        ),
    )
    log_level: str = field(
        default="info",
        metadata=_doc("DS_LOG_LEVEL", "--log-level", "Log level: debug, info, warning, error."),
    )

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from the environment; `overrides` (command-line flags) win when not None."""
        env = dict(os.environ) if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            name = f.metadata.get("env")
            if name and env.get(name):
                values[f.name] = _convert(f.type, env[name], name)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "data_dir" in values:
            values["data_dir"] = Path(str(values["data_dir"]))
        return cls(**values)  # type: ignore[arg-type]


def _convert(kind: object, raw: str, name: str) -> object:
    try:
        if kind in ("int", int):
            return int(raw)
        if kind in ("float", float):
            return float(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a valid {kind}") from None
    return raw


FIELDS = fields(Settings)
