"""Releases over the API (checklist 8.1 approval workflows): approver keys approve, admin keys promote and roll back,
the policy refuses with 409 and says what is missing, a server answering with the production release switches on a
promotion made over its own API, and an answer's lineage is readable by editors and up."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from live_server import bearer, small_project

from flightdeck.serving.api import create_app
from flightdeck.serving.releases import ReleaseSwitch
from flightdeck.serving.service import Service

pytestmark = pytest.mark.unit

DOCS = {"venv.md": "# Virtual environments\n\nCreate a virtual environment with python -m venv.\n",
        "sorting.md": "# Sorting\n\nPass a key function to sorted to sort records by a field.\n"}
GOVERNANCE = "governance:\n  approvals: {gates_must_pass: false}\n"


def test_approve_promote_and_roll_back_over_the_api(tmp_path: Path) -> None:
    project = small_project(tmp_path / "p", DOCS, extra=GOVERNANCE)
    keys = {role: project.api_keys.create(role).key for role in ("viewer", "editor", "approver", "admin")}
    v1, _ = project.create_release()
    # the first release reaches production through the API, and the server follows production from then on
    with TestClient(create_app(Service(project, project.api_keys)), raise_server_exceptions=False) as client:
        refused = client.post(f"/v1/releases/{v1.id}/promote", json={}, headers=bearer(keys["admin"]))
        assert refused.status_code == 409 and refused.json()["error"]["type"] == "policy_refused"
        assert "0 of 1 approval(s) from an approver or admin" in refused.json()["error"]["message"]
        approved = client.post(f"/v1/releases/{v1.name}/approve", json={"comment": "ok"},
                               headers=bearer(keys["approver"]))
        assert approved.status_code == 200 and approved.json()["policy"]["allowed"]
        assert approved.json()["event"]["actor"].startswith("key:")
        assert client.post(f"/v1/releases/{v1.id}/promote", json={},
                           headers=bearer(keys["approver"])).status_code == 403
        promoted = client.post(f"/v1/releases/{v1.id}/promote", json={"comment": "ship"},
                               headers=bearer(keys["admin"]))
        assert promoted.status_code == 200 and promoted.json()["release"]["stage"] == "production"
        again = client.post(f"/v1/releases/{v1.id}/promote", json={}, headers=bearer(keys["admin"]))
        assert again.status_code == 409 and again.json()["error"]["type"] == "conflict"
        bad = client.post(f"/v1/releases/{v1.id}/promote", json={"stage": "archived"}, headers=bearer(keys["admin"]))
        assert bad.status_code == 422

    (tmp_path / "p" / "docs" / "json.md").write_text("# JSON\n\nRead JSON text with json.loads.\n", "utf-8")
    project.run()
    v2, _ = project.create_release()
    switch = ReleaseSwitch(project, "production", poll_s=3600)  # checked by hand below
    with TestClient(create_app(Service(project, project.api_keys, release=switch)),
                    raise_server_exceptions=False) as client:
        assert client.get("/ready").json()["release"]["id"] == v1.id
        client.post(f"/v1/releases/{v2.id}/approve", json={}, headers=bearer(keys["approver"]))
        assert client.post(f"/v1/releases/{v2.id}/promote", json={}, headers=bearer(keys["admin"])).status_code == 200
        assert switch.check() and client.get("/ready").json()["release"]["id"] == v2.id
        answer = client.post("/v1/query", json={"question": "How do I read JSON text?"}, headers=bearer(keys["viewer"]))
        assert answer.status_code == 200 and answer.json()["index_version"] == v2.index_version
        trace = answer.json()["trace_id"]
        listed = client.get("/v1/releases", headers=bearer(keys["editor"])).json()
        assert [r["stage"] for r in listed["releases"]] == ["production", "archived"]
        assert listed["serving"]["id"] == v2.id and listed["serving"]["target"] == "production"
        lineage = client.get(f"/v1/lineage/{trace}", headers=bearer(keys["editor"]))
        assert lineage.status_code == 200
        assert any(e["relation"] == "answered by" and e["to"] == v2.id for e in lineage.json()["edges"])
        assert client.get(f"/v1/lineage/{trace}", headers=bearer(keys["viewer"])).status_code == 403
        back = client.post("/v1/releases/rollback", json={"comment": "v2 regressed"}, headers=bearer(keys["admin"]))
        assert back.status_code == 200 and back.json()["release"]["id"] == v1.id
        assert switch.check() and client.get("/ready").json()["release"]["id"] == v1.id
        shown = client.get(f"/v1/releases/{v2.id}", headers=bearer(keys["editor"])).json()
        assert shown["intact"] and [e["event"] for e in shown["events"]][-1] == "archived"
