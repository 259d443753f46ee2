"""API keys: from the environment, or generated once and kept in the data dir."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

KEYS_FILE = "keys.json"


@dataclass(frozen=True)
class Keys:
    api: str
    admin: str

    def role(self, presented: str | None) -> str | None:
        """'admin', 'api' or None; compared in constant time."""
        if not presented:
            return None
        given = presented.encode()
        admin = hmac.compare_digest(given, self.admin.encode())
        api = hmac.compare_digest(given, self.api.encode())
        return "admin" if admin else "api" if api else None


def load_or_create(data_dir: Path, api: str | None, admin: str | None) -> tuple[Keys, bool]:
    """Keys from the arguments, else from `data_dir/keys.json`, else new ones (created=True)."""
    path = data_dir / KEYS_FILE
    stored: dict[str, str] = {}
    if (api is None or admin is None) and path.exists():
        stored = json.loads(path.read_text())
    created = False
    if (api is None and "api" not in stored) or (admin is None and "admin" not in stored):
        stored.setdefault("api", secrets.token_hex(16))
        stored.setdefault("admin", secrets.token_hex(16))
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)  # O_CREAT keeps the mode of an existing file
            json.dump(stored, f)
        created = True
    return Keys(api or stored["api"], admin or stored["admin"]), created


def key_id(role: str, presented: str) -> str:
    """A stable name for a key in the audit: its role and a digest prefix, never the key."""
    return f"{role}:{hashlib.sha256(presented.encode()).hexdigest()[:12]}"
