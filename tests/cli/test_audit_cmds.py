"""``flightdeck audit verify|log|export|anchor|prune`` on a real workspace: exit 1 naming the first bad entry after the
SQLite file is edited, filters, JSON, export, anchors and retention."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from flightdeck.cli.main import app
from flightdeck.workspace.audit import local_actor

pytestmark = pytest.mark.unit

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLIGHTDECK_AUDIT_KEY", raising=False)


def _spec(root: Path, audit: str = "{}") -> Path:
    (root / "docs").mkdir(parents=True, exist_ok=True)
    (root / "flightdeck.yaml").write_text(textwrap.dedent(f"""\
        project: audited
        data:
          sources: [{{provider: files, path: ./docs}}]
        governance:
          audit: {audit}
        """), "utf-8")
    return root


def _cli(*args: str) -> Result:
    return runner.invoke(app, list(args))


def _keys(spec: Path, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        result = _cli("keys", "create", "--role", "viewer", "--spec", str(spec), "--json")
        assert result.exit_code == 0, result.output
        ids.append(json.loads(result.output)["id"])
    return ids


@pytest.mark.exercises("governance.model_governance.audit_logs")
def test_verify_passes_then_names_the_edited_entry_and_exits_1(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    _keys(spec, 4)
    ok = _cli("audit", "verify", "--spec", str(spec))
    assert ok.exit_code == 0, ok.output
    assert "audit log intact: 4 entries checked (entries 1-4; hash chain)" in ok.output
    db = sqlite3.connect(tmp_path / ".flightdeck" / "metadata.db")
    db.execute("UPDATE audit_log SET details = '{\"role\":\"admin\"}' WHERE seq = 3")
    db.commit()
    bad = _cli("audit", "verify", "--spec", str(spec))
    assert bad.exit_code == 1
    assert "entry 3 was edited (its hash does not match its content)" in bad.output
    as_json = _cli("audit", "verify", "--spec", str(spec), "--json")
    assert as_json.exit_code == 1
    body = json.loads(as_json.output)
    assert body["ok"] is False and body["first_bad_seq"] == 3 and body["checked"] == 2


def test_log_filters_and_prints_json(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    ids = _keys(spec, 3)
    assert _cli("keys", "revoke", ids[0], "--spec", str(spec)).exit_code == 0
    text = _cli("audit", "log", "--spec", str(spec))
    lines = text.output.splitlines()
    assert len(lines) == 4 and lines[0].split()[0] == "1" and f"{local_actor()}  key.created  {ids[0]}" in lines[0]
    found = json.loads(_cli("audit", "log", "--action", "key.revoked", "--json", "--spec", str(spec)).output)
    assert [(e["seq"], e["target"], e["details"]) for e in found] == [(4, ids[0], {"role": "viewer"})]
    newest = json.loads(_cli("audit", "log", "--limit", "2", "--since", "1d", "--json", "--spec", str(spec)).output)
    assert [e["seq"] for e in newest] == [3, 4]
    assert "no audit entries match" in _cli("audit", "log", "--actor", "key:nobody", "--spec", str(spec)).output
    wrong = _cli("audit", "log", "--since", "yesterday-ish", "--spec", str(spec))
    assert wrong.exit_code == 2 and "a date such as 2026-12-01" in wrong.output


def test_export_anchor_and_prune(tmp_path: Path) -> None:
    anchor = tmp_path / "outside" / "anchor.jsonl"
    spec = _spec(tmp_path / "p", f"{{anchor: {anchor}, anchor_every: 1000}}")
    _keys(spec, 3)
    out = tmp_path / "audit.jsonl"
    exported = _cli("audit", "export", str(out), "--spec", str(spec))
    assert exported.exit_code == 0 and "exported 3 audit entries" in exported.output
    assert [json.loads(line)["seq"] for line in out.read_text().splitlines()] == [1, 2, 3]
    anchored = _cli("audit", "anchor", "--spec", str(spec), "--json")
    assert anchored.exit_code == 0, anchored.output
    assert json.loads(anchored.output)["seq"] == 3 and json.loads(anchor.read_text())["seq"] == 3
    no_retention = _cli("audit", "prune", "--spec", str(spec))
    assert no_retention.exit_code == 1
    assert "governance.audit.retention_days is not set" in no_retention.output
    assert "nothing to prune" in _cli("audit", "prune", "--older-than", "1d", "--spec", str(spec)).output
    spec = _spec(tmp_path / "p", f"{{anchor: {anchor}, retention_days: 0.0000001}}")  # everything is older
    pruned = _cli("audit", "prune", "--spec", str(spec), "--json")
    assert pruned.exit_code == 0, pruned.output
    body = json.loads(pruned.output)
    assert body["pruned"] == 3 and body["through_seq"] == 3 and body["entry"]["action"] == "audit.pruned"
    check = json.loads(_cli("audit", "verify", "--json", "--spec", str(spec)).output)
    assert check["ok"] and check["genesis_seq"] == 3 and check["head_seq"] == 4


def test_anchor_without_an_anchor_file_says_what_to_set(tmp_path: Path) -> None:
    result = _cli("audit", "anchor", "--spec", str(_spec(tmp_path)))
    assert result.exit_code == 1 and "set governance.audit.anchor" in result.output
