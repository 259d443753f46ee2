"""Every PostgreSQL advisory lock the service takes, in one place.

A one-key lock (`pg_advisory_lock(bigint)`) and a two-key lock (`pg_advisory_lock(int, int)`)
live in different spaces, so `ROLES` and the writers' `(WRITER, id)` do not collide although
their first numbers are equal. The numbers are part of the deployed protocol: processes of two
versions sharing a database must agree on them, so they never change.
"""

from __future__ import annotations

LEARNER = 720_101  # session lock of the elected learner, held on its election connection
FINALIZE = 720_102  # transaction lock: one finalization (or log deletion) at a time
ROLES = 720_103  # transaction lock: every change of the policies' roles, and the checks before
WRITER = 720_103  # first key of `(WRITER, writer id)`, held by a group-commit writer's session
FIRST_START = 7201  # transaction lock: the default configuration and champion, written once
