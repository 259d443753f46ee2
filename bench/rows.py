"""What PostgreSQL spends per logged decision, by how the writer sends the rows.

`python3 -m bench.rows [--database-url URL] [--rows 3000] [--actions 5 --actions 50]`

Each encoding writes the same decision rows (`bench.commit.decision_row`: what the service logs
for a rank of the benchmark body, a new eventId each) into `decisions` and queues them in
`pending`, as the group-commit writer does, in batches of 1 and of 32 rows (one transaction
each), on a fresh database. The figure is the CPU time of the server process that served the
connection (`/proc/<backend pid>/stat`, user + system, so the server must run on this machine)
divided by the rows, and the client's own CPU per row beside it:

- `per-row`: one prepared `INSERT … VALUES` per row (with the `pending` insert in a CTE), the
  rows of a batch in one pipeline (a batch of one: a plain statement);
- `unnest`: one prepared `INSERT … SELECT … FROM unnest(…)` per batch, one array per column
  (sent in binary), with the same CTE: one plain statement;
- `copy`: binary `COPY` into a temporary staging table, then `INSERT … SELECT … ON CONFLICT DO
  NOTHING RETURNING` and the `pending` insert, in one transaction (a temporary table writes no
  WAL; `COPY` straight into `decisions` could not skip a duplicate eventId).

The writer sends one row as `per-row` does and several as `unnest` does (`app/store/writer.py`);
bench/README.md has the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg

from app.store import batch_statements as writer
from app.store.db import migrate
from bench import commit
from bench.database import DEFAULT_URL, fresh_database, postgres_server

COLUMNS = writer.COLUMNS
JSON = set(writer._JSON_FIELDS)
STAGING = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS staging ({
    ", ".join(f"{c} {writer.SENT_AS[c]}" for c in COLUMNS)
}) ON COMMIT DELETE ROWS
"""
FROM_STAGING = f"""
WITH inserted AS (
    INSERT INTO decisions (created_at, {", ".join(COLUMNS)})
    SELECT now(), {", ".join(f"{c}::jsonb" if c in JSON else c for c in COLUMNS)} FROM staging
    ON CONFLICT DO NOTHING RETURNING event_id, deferred
), {writer.QUEUE}
SELECT event_id FROM inserted
"""


def _ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def _rows(n: int, actions: int) -> list[list[Any]]:
    template = commit.decision_row(actions)
    rows = []
    for _ in range(n):
        values = {**template, "event_id": f"row-{uuid.uuid4()}"}
        rows.append([json.dumps(values[c].obj) if c in JSON else values[c] for c in COLUMNS])
    return rows


async def _per_row(conn: psycopg.AsyncConnection[Any], batch: list[list[Any]]) -> None:
    cursors = [conn.cursor() for _ in batch]
    rows = [{**dict(zip(COLUMNS, row, strict=True)), "batch": 0} for row in batch]
    if len(batch) == 1:
        await cursors[0].execute(writer.INSERT_DECISION, rows[0], prepare=True)
    else:
        async with conn.pipeline():
            for cursor, params in zip(cursors, rows, strict=True):
                await cursor.execute(writer.INSERT_DECISION, params, prepare=True)
    for cursor in cursors:
        await cursor.fetchall()


async def _unnest(conn: psycopg.AsyncConnection[Any], batch: list[list[Any]]) -> None:
    params = {c: [row[i] for row in batch] for i, c in enumerate(COLUMNS)}
    params["batch"] = 0
    cursor = conn.cursor()
    await cursor.execute(writer.INSERT_DECISIONS, params, prepare=True)
    await cursor.fetchall()


async def _copy(conn: psycopg.AsyncConnection[Any], batch: list[list[Any]]) -> None:
    async with conn.transaction():
        cursor = conn.cursor()
        await cursor.execute(STAGING)
        async with cursor.copy(
            f"COPY staging ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types([writer.SENT_AS[c] for c in COLUMNS])
            for row in batch:
                await copy.write_row(row)
        await cursor.execute(FROM_STAGING, {"batch": 0}, prepare=True)
        await cursor.fetchall()


ENCODINGS: dict[str, Callable[[psycopg.AsyncConnection[Any], list[list[Any]]], Awaitable[None]]] = {
    "per-row": _per_row,
    "unnest": _unnest,
    "copy": _copy,
}


async def measure_one(url: str, name: str, rows: list[list[Any]], size: int) -> dict[str, Any]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        pid = (await (await conn.execute("SELECT pg_backend_pid()")).fetchone())[0]  # type: ignore[index]
        encode = ENCODINGS[name]
        await encode(conn, rows[:size])  # warm: prepared statements, staging table
        work = rows[size:]
        server, client, wall = _ticks(pid), time.process_time(), time.perf_counter()
        for start in range(0, len(work), size):
            await encode(conn, work[start : start + size])
        server_s = (_ticks(pid) - server) / os.sysconf("SC_CLK_TCK")
        client_s, wall_s = time.process_time() - client, time.perf_counter() - wall
    per = 1e6 / len(work)
    return {
        "encoding": name,
        "batch": size,
        "rows": len(work),
        "server_us_per_row": round(server_s * per, 1),
        "client_us_per_row": round(client_s * per, 1),
        "wall_us_per_row": round(wall_s * per, 1),
    }


def measure(server_url: str, n: int, actions: list[int]) -> list[dict[str, Any]]:
    results = []
    for a in actions:
        rows = _rows(n * 2 * len(ENCODINGS) + 100, a)
        used = 0
        for size in (1, 32):
            for name in ENCODINGS:
                with fresh_database(server_url) as url:
                    migrate(url)
                    chunk = rows[used : used + n + size]
                    used += n + size
                    result = asyncio.run(measure_one(url, name, chunk, size))
                results.append({"actions": a, **result})
                print(
                    f"{a:>3} actions, batch {size:>2}, {name:<8}: server"
                    f" {result['server_us_per_row']:>7.1f} us/row, client"
                    f" {result['client_us_per_row']:>7.1f} us/row, wall"
                    f" {result['wall_us_per_row']:>7.1f} us/row",
                    flush=True,
                )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python3 -m bench.rows", description=__doc__)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--actions", type=int, action="append")
    args = parser.parse_args()
    with postgres_server(args.database_url) as server:
        measure(server, args.rows, args.actions or [5, 50])


if __name__ == "__main__":
    main()
