"""The benchmarks' PostgreSQL: the given server if it answers, else an embedded one, and a fresh
database on it that is dropped afterwards."""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg

from app.store.db import start_embedded

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


@contextlib.contextmanager
def embedded_server() -> Iterator[str]:
    """An embedded PostgreSQL in a temporary directory, for as long as the context lasts."""
    with tempfile.TemporaryDirectory(prefix="ds-bench-pg-") as tmp:
        url, handle = start_embedded(Path(tmp))
        try:
            yield url
        finally:
            handle.cleanup()


@contextlib.contextmanager
def postgres_server(url: str) -> Iterator[str]:
    """`url` if it answers, else an embedded PostgreSQL in a temporary directory."""
    try:
        with psycopg.connect(_libpq(url), connect_timeout=3):
            pass
    except psycopg.Error:
        print(f"{url.split('@')[-1]} unreachable: starting an embedded PostgreSQL")
        with embedded_server() as embedded:
            yield embedded
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
