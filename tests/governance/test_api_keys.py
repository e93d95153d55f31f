"""API keys and roles (checklist 8.3): shown once, stored as hashes, checked on every use, revoked at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flightdeck.cli.main import app
from flightdeck.errors import WorkspaceError
from flightdeck.governance.access import ROLE_PERMISSIONS, Permission, Role, allowed, parse_role
from flightdeck.governance.api_keys import AuthenticationError, KeyStore, parse_duration
from flightdeck.workspace import Workspace

pytestmark = pytest.mark.unit

runner = CliRunner()


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(Workspace(tmp_path / "ws"), clock=Clock())


def test_a_created_key_verifies_and_says_its_role(store: KeyStore) -> None:
    issued = store.create("editor", name="ingest bot")
    assert issued.key.startswith(f"fdk_{issued.record.id}_")
    record = store.verify(issued.key)
    assert (record.id, record.role, record.name) == (issued.record.id, Role.EDITOR, "ingest bot")
    assert store.verify(f"  {issued.key}\n").id == record.id  # pasted with whitespace


def test_the_workspace_keeps_a_hash_never_the_key(store: KeyStore, tmp_path: Path) -> None:
    issued = store.create(Role.ADMIN)
    secret = issued.key.removeprefix(f"fdk_{issued.record.id}_")
    assert len(secret) == 43
    store.ws.engine.dispose()
    for path in (tmp_path / "ws").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert issued.key.encode() not in data and secret.encode() not in data, path
    assert "key" not in store.list()[0].to_dict()


@pytest.mark.parametrize("wrong", ["", None, "Bearer x", "fdk_123", "fdk_zzzzzzzzzzzz_" + "a" * 43])
def test_malformed_or_missing_keys_are_refused(store: KeyStore, wrong: str | None) -> None:
    store.create("viewer")
    with pytest.raises(AuthenticationError):
        store.verify(wrong)


def test_a_wrong_secret_and_an_unknown_id_read_the_same(store: KeyStore) -> None:
    issued = store.create("viewer")
    key_id = issued.record.id
    secret = issued.key.removeprefix(f"fdk_{key_id}_")  # the secret itself may hold "_"
    assert len(secret) == 43
    tampered = f"fdk_{key_id}_{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"
    unknown = f"fdk_{'0' * 12 if key_id != '0' * 12 else '1' * 12}_{secret}"
    messages = set()
    for key in (tampered, unknown):
        with pytest.raises(AuthenticationError) as err:
            store.verify(key)
        messages.add(str(err.value))
    assert messages == {"invalid API key"}


def test_an_expired_key_fails_from_the_moment_it_expires(store: KeyStore) -> None:
    clock = store.clock
    assert isinstance(clock, Clock)
    issued = store.create("viewer", expires_in=parse_duration("2h"))
    clock.now += 2 * 3600 - 1
    store.verify(issued.key)
    clock.now += 1
    with pytest.raises(AuthenticationError, match=f"API key {issued.record.id} is expired"):
        store.verify(issued.key)
    assert store.get(issued.record.id).status(clock.now) == "expired"


def test_a_revoked_key_fails_on_its_next_use_and_revoking_twice_keeps_the_first_time(store: KeyStore) -> None:
    issued = store.create("viewer")
    other = store.create("viewer")
    store.verify(issued.key)
    first = store.revoke(issued.record.id[:6])
    with pytest.raises(AuthenticationError, match="is revoked"):
        store.verify(issued.key)
    store.verify(other.key)  # only that key
    clock = store.clock
    assert isinstance(clock, Clock)
    clock.now += 60
    assert store.revoke(issued.record.id).revoked_at == first.revoked_at


def test_keys_are_named_by_id_or_unique_prefix(store: KeyStore) -> None:
    issued = store.create("viewer")
    assert store.get(f"fdk_{issued.record.id}").id == issued.record.id
    with pytest.raises(WorkspaceError, match="no key matches"):
        store.get("ffffffffffff" if not issued.record.id.startswith("f") else "000000000000")
    with pytest.raises(WorkspaceError, match="is not a key id"):
        store.get("not-hex")


def test_bad_settings_are_refused(store: KeyStore) -> None:
    with pytest.raises(ValueError, match="unknown role 'root'; use one of: viewer, editor, approver, admin"):
        store.create("root")
    with pytest.raises(ValueError, match="expires_in must be positive"):
        store.create("viewer", expires_in=0)
    with pytest.raises(ValueError, match="1 to 200 characters"):
        store.create("viewer", name=" ")
    for text, seconds in (("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("2w", 14 * 86400), ("1.5h", 5400)):
        assert parse_duration(text) == seconds
    for bad in ("", "30", "d", "-1d", "0d", "3y"):
        with pytest.raises(ValueError, match="expected a duration"):
            parse_duration(bad)


def test_each_role_holds_the_permissions_of_those_below_and_unknown_is_denied() -> None:
    order = [Role.VIEWER, Role.EDITOR, Role.APPROVER, Role.ADMIN]
    for lower, higher in zip(order, order[1:], strict=False):
        assert ROLE_PERMISSIONS[lower] < ROLE_PERMISSIONS[higher]
    assert allowed("viewer", Permission.QUERY) and not allowed("viewer", Permission.DOCUMENTS_WRITE)
    assert allowed("editor", "documents:write") and not allowed("editor", Permission.KEYS_MANAGE)
    assert allowed("admin", Permission.KEYS_MANAGE)
    assert not allowed("root", Permission.QUERY) and not allowed("admin", "everything")
    assert set(ROLE_PERMISSIONS[Role.ADMIN]) == set(Permission)
    assert parse_role(" Admin ") is Role.ADMIN


def test_the_cli_prints_a_key_once_lists_without_it_and_revokes(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    spec = tmp_path / "flightdeck.yaml"
    spec.write_text("project: keys\ndata:\n  sources:\n    - {provider: files, path: ./docs}\n")
    created = runner.invoke(app, ["keys", "create", "--role", "viewer", "--expires", "30d", "--name", "app",
                                  "--spec", str(spec), "--json"])
    assert created.exit_code == 0, created.output
    issued = json.loads(created.stdout)
    assert issued["key"].startswith(f"fdk_{issued['id']}_") and issued["status"] == "active"
    listed = runner.invoke(app, ["keys", "list", "--spec", str(spec), "--json"])
    assert listed.exit_code == 0 and issued["key"] not in listed.stdout
    assert [(k["id"], k["role"], k["name"]) for k in json.loads(listed.stdout)] == [(issued["id"], "viewer", "app")]
    revoked = runner.invoke(app, ["keys", "revoke", issued["id"], "--spec", str(spec)])
    assert revoked.exit_code == 0 and f"revoked key {issued['id']}" in revoked.stdout
    store = KeyStore(Workspace(tmp_path / ".flightdeck"))
    with pytest.raises(AuthenticationError, match="revoked"):
        store.verify(issued["key"])
    bad = runner.invoke(app, ["keys", "create", "--role", "god", "--spec", str(spec)])
    assert bad.exit_code == 2 and "unknown role 'god'" in bad.output
    missing = runner.invoke(app, ["keys", "revoke", "abcdef", "--spec", str(spec)])
    assert missing.exit_code == 1 and "no key matches 'abcdef'" in missing.output
