"""API keys: from the environment, else generated once and kept (mode 0600) in the data dir."""

from __future__ import annotations

import json
import os
import stat

import pytest

from app.keys import KEYS_FILE, Keys, load_or_create


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_generated_keys_are_persisted_with_mode_0600(tmp_path, umask):
    data_dir = tmp_path / "data" / "nested"  # created on demand
    previous = os.umask(umask)
    try:
        keys, created = load_or_create(data_dir, None, None)
    finally:
        os.umask(previous)
    assert created is True
    path = data_dir / KEYS_FILE
    assert mode_of(path) == 0o600
    assert json.loads(path.read_text()) == {"api": keys.api, "admin": keys.admin}


def test_generated_keys_are_long_random_and_distinct(tmp_path):
    first, _ = load_or_create(tmp_path / "one", None, None)
    second, _ = load_or_create(tmp_path / "two", None, None)
    assert first.api != first.admin
    assert len({first.api, first.admin, second.api, second.admin}) == 4
    for key in (first.api, first.admin):
        assert len(key) >= 32
        int(key, 16)  # hex


def test_generated_keys_are_reused_on_the_second_call(tmp_path):
    keys, created = load_or_create(tmp_path, None, None)
    path = tmp_path / KEYS_FILE
    written = path.read_text()
    again, created_again = load_or_create(tmp_path, None, None)
    assert created is True
    assert created_again is False
    assert again == keys
    assert path.read_text() == written
    assert mode_of(path) == 0o600


def test_environment_keys_win_over_stored_keys(tmp_path):
    stored, _ = load_or_create(tmp_path, None, None)
    keys, created = load_or_create(tmp_path, "env-api", "env-admin")
    assert keys == Keys("env-api", "env-admin")
    assert created is False
    # The stored keys are left as they were.
    assert json.loads((tmp_path / KEYS_FILE).read_text()) == {
        "api": stored.api,
        "admin": stored.admin,
    }


def test_environment_keys_need_no_file(tmp_path):
    data_dir = tmp_path / "data"
    keys, created = load_or_create(data_dir, "env-api", "env-admin")
    assert keys == Keys("env-api", "env-admin")
    assert created is False
    assert not (data_dir / KEYS_FILE).exists()


def test_one_environment_key_and_one_stored_key(tmp_path):
    stored, _ = load_or_create(tmp_path, None, None)
    keys, created = load_or_create(tmp_path, "env-api", None)
    assert keys == Keys("env-api", stored.admin)
    assert created is False
    keys, created = load_or_create(tmp_path, None, "env-admin")
    assert keys == Keys(stored.api, "env-admin")
    assert created is False


def test_one_environment_key_generates_the_other(tmp_path):
    keys, created = load_or_create(tmp_path, "env-api", None)
    assert created is True
    assert keys.api == "env-api"
    assert keys.admin and keys.admin != "env-api"
    assert mode_of(tmp_path / KEYS_FILE) == 0o600
    again, created_again = load_or_create(tmp_path, "env-api", None)
    assert created_again is False
    assert again.admin == keys.admin


# ---------------------------------------------------------------- role()


KEYS = Keys(api="the-api-key", admin="the-admin-key")


@pytest.mark.parametrize(
    ("presented", "role"),
    [
        ("the-admin-key", "admin"),
        ("the-api-key", "api"),
        (None, None),
        ("", None),
        ("wrong", None),
        ("the-api-key ", None),
        (" the-api-key", None),
        ("the-api-ke", None),
        ("THE-API-KEY", None),
        ("the-admin-key\n", None),
        ("the-api-keythe-admin-key", None),
        ("ünïcödé", None),
    ],
)
def test_role(presented, role):
    assert KEYS.role(presented) == role


def test_role_with_generated_keys(tmp_path):
    keys, _ = load_or_create(tmp_path, None, None)
    assert keys.role(keys.admin) == "admin"
    assert keys.role(keys.api) == "api"
    assert keys.role(keys.api[:-1]) is None


def test_generated_key_added_to_an_existing_file_is_0600(tmp_path):
    path = tmp_path / KEYS_FILE
    path.write_text(json.dumps({"api": "stored-api"}))
    path.chmod(0o644)
    keys, created = load_or_create(tmp_path, None, None)
    assert created is True
    assert keys.api == "stored-api"
    assert json.loads(path.read_text())["admin"] == keys.admin
    assert mode_of(path) == 0o600
