"""``governance.audit``: the settings validated, the signing key and the anchor resolved, and refused inside the
workspace with the spec's file, line and setting."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flightdeck import Project
from flightdeck.errors import SpecError
from flightdeck.spec.audit import AuditSettings, resolve_audit
from flightdeck.spec.loader import check_spec, load_spec

pytestmark = pytest.mark.unit

KEY = "0123456789abcdef0123456789abcdef"


def _spec(root: Path, audit: str) -> Path:
    (root / "docs").mkdir(parents=True, exist_ok=True)
    path = root / "flightdeck.yaml"
    path.write_text(textwrap.dedent("""\
        project: audited
        data:
          sources: [{provider: files, path: ./docs}]
        governance:
          audit: %s
        """) % audit, "utf-8")
    return path


def test_the_defaults_sign_with_the_env_key_and_keep_every_entry() -> None:
    settings = AuditSettings()
    assert settings.signing_key_env == "FLIGHTDECK_AUDIT_KEY" and settings.anchor_every == 100
    assert settings.retention_days is None and settings.log_queries is False and settings.anchor is None
    with pytest.raises(ValueError):
        AuditSettings(anchor_every=0)
    with pytest.raises(ValueError):
        AuditSettings(signing_key_env="not a name")


def test_unknown_settings_are_refused_with_their_line(tmp_path: Path) -> None:
    loaded, problems = check_spec(_spec(tmp_path, "{anchor_evry: 10}"))
    assert loaded is None and any("governance.audit.anchor_evry" in str(p) and ":5:" in str(p) for p in problems), \
        [str(p) for p in problems]


def test_the_key_comes_from_the_env_var_else_the_key_file(tmp_path: Path) -> None:
    keyfile = tmp_path / "secrets" / "audit.key"
    keyfile.parent.mkdir()
    keyfile.write_text(KEY[::-1] + "\n")
    loaded = load_spec(_spec(tmp_path / "p", f"{{signing_key_file: {keyfile}, anchor: ../anchor.jsonl}}"))
    workspace = tmp_path / "p" / ".flightdeck"
    key, anchor = resolve_audit(loaded, workspace, environ={"FLIGHTDECK_AUDIT_KEY": KEY})
    assert key == KEY.encode() and anchor == tmp_path / "anchor.jsonl"  # relative to the spec's folder
    key, _ = resolve_audit(loaded, workspace, environ={})
    assert key == KEY[::-1].encode()  # the file's, without its newline
    unsigned = load_spec(_spec(tmp_path / "q", "{signing_key_env: OTHER_KEY}"))
    assert resolve_audit(unsigned, tmp_path / "q" / ".flightdeck", environ={"FLIGHTDECK_AUDIT_KEY": KEY}) == (None,
                                                                                                             None)


@pytest.mark.exercises("governance.model_governance.audit_logs")
@pytest.mark.parametrize("field", ["anchor", "signing_key_file"])
def test_a_key_or_anchor_inside_the_workspace_is_refused_naming_the_setting(tmp_path: Path, field: str,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLIGHTDECK_AUDIT_KEY", raising=False)
    (tmp_path / ".flightdeck").mkdir()
    (tmp_path / ".flightdeck" / "audit.key").write_text(KEY)
    loaded = load_spec(_spec(tmp_path, f"{{{field}: .flightdeck/audit.key}}"))
    with pytest.raises(SpecError) as caught:
        resolve_audit(loaded, tmp_path / ".flightdeck", environ={})
    message = str(caught.value)
    assert "flightdeck.yaml:5:" in message and f"governance.audit.{field}:" in message
    assert "is inside the workspace" in message and "must live outside it" in message
    # the facade refuses the same way, before anything is recorded
    with pytest.raises(SpecError, match="is inside the workspace"):
        Project.load(tmp_path).audit  # noqa: B018


def test_a_missing_key_file_or_a_short_key_is_refused(tmp_path: Path) -> None:
    loaded = load_spec(_spec(tmp_path, f"{{signing_key_file: {tmp_path / 'nowhere.key'}}}"))
    with pytest.raises(SpecError, match="governance.audit.signing_key_file: cannot read the audit signing key"):
        resolve_audit(loaded, tmp_path / ".flightdeck", environ={})
    with pytest.raises(SpecError, match=r"the audit signing key in \$FLIGHTDECK_AUDIT_KEY is 5 bytes; use at least 16"):
        resolve_audit(loaded, tmp_path / ".flightdeck", environ={"FLIGHTDECK_AUDIT_KEY": "short"})
