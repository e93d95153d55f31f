"""IAM-style policies (governance.policies): a key limited to one tenant's documents never sees another's, on
any route; a deny statement takes an action away whatever the role grants."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from urllib.parse import quote

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from live_server import LiveServer as Server  # noqa: E402
from live_server import bearer as _auth  # noqa: E402

from flightdeck import Project  # noqa: E402
from flightdeck.errors import SpecError  # noqa: E402
from flightdeck.serving.service import Service  # noqa: E402
from flightdeck.testing import FakeEmbedder  # noqa: E402

pytestmark = pytest.mark.integration

RECORDS = [
    {"_id": "a1", "title": "Acme refunds", "tenant": "acme",
     "text": "Acme refunds are paid within 14 days to the original card. Refunds need the order number."},
    {"_id": "a2", "title": "Acme shipping", "tenant": "acme",
     "text": "Acme ships parcels from Lyon every weekday. Shipping is free above 50 euros."},
    {"_id": "g1", "title": "Globex refunds", "tenant": "globex",
     "text": "Globex refunds are paid within 30 days as store credit. Refunds need the receipt."},
    {"_id": "g2", "title": "Globex secret plan", "tenant": "globex",
     "text": "Globex plans to acquire Initech next spring. The refunds policy will change then."},
]


def _project(root: Path, policies: str) -> Project:
    (root / "data").mkdir(parents=True)
    (root / "data" / "kb.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS), "utf-8")
    (root / "flightdeck.yaml").write_text(textwrap.dedent("""\
        project: tenants
        data:
          sources: [{provider: files, path: ./data}]
        retrieval: {system: [hybrid_search, metadata_filtering]}
        model:
          generator: {provider: extractive, min_score: -1}
        governance:
          access_control: [api_authentication, rbac, iam_policies]
        """) + policies, "utf-8")
    project = Project.load(root).use(embedder=FakeEmbedder())
    project.run()
    return project


@pytest.mark.exercises("governance.access_control.iam_policies")
def test_a_key_limited_to_a_tenant_never_sees_another_tenants_documents(tmp_path: Path) -> None:
    from flightdeck.governance.api_keys import KeyStore
    from flightdeck.workspace import Workspace

    root = tmp_path / "p"
    keys = KeyStore(Workspace(root / ".flightdeck"))  # the keys first: the policy names one by its id
    acme = keys.create("editor", name="acme app")
    admin = keys.create("admin")
    project = _project(root, "  policies:\n"
                             f'    - {{effect: allow, principals: ["key:{acme.record.id}"], actions: ["*"], '
                             "where: {tenant: acme}}\n"
                             '    - {effect: deny, principals: ["role:viewer"], actions: [metrics]}\n')
    viewer = project.api_keys.create("viewer").key
    with Server(Service(project, project.api_keys)) as server:
        def post(route: str, body: dict, key: str) -> httpx.Response:
            return httpx.post(f"{server.url}{route}", json=body, headers=_auth(key), timeout=30)

        def tenants(hits: list[dict]) -> set[str]:
            return {h["metadata"]["tenant"] for h in hits}

        everything = post("/v1/search", {"query": "refunds Globex Initech plan", "k": 10}, admin.key).json()
        assert tenants(everything["hits"]) == {"acme", "globex"}
        for body in ({"query": "refunds Globex Initech plan", "k": 10},
                     {"query": "Globex secret plan", "mode": "keyword"},
                     {"query": "refunds", "where": {"tenant": "globex"}},  # its own filter cannot widen the scope
                     {"query": "refunds", "where": {"$or": [{"tenant": "globex"}, {"tenant": "acme"}]}}):
            found = post("/v1/search", body, acme.key)
            assert found.status_code == 200, found.text
            assert tenants(found.json()["hits"]) <= {"acme"}, body
        answer = post("/v1/query", {"question": "What is the Globex secret plan about Initech?"}, acme.key).json()
        assert all(c["document_id"].split("#")[1].startswith("a") for c in answer["citations"])
        assert "Initech" not in answer["answer"]
        chat = post("/v1/chat/completions", {"model": "x", "messages": [
            {"role": "user", "content": "Globex refunds and the Initech plan?"}]}, acme.key).json()
        assert "Globex" not in chat["choices"][0]["message"]["content"]
        assert all("#a" in c["document_id"] for c in chat["flightdeck"]["citations"])
        trace = httpx.get(f"{server.url}/v1/traces/{answer['trace_id']}", headers=_auth(admin.key)).json()
        assert trace["details"]["scope"] == {"tenant": "acme"}
        # documents outside the scope are not there for it; uploads and batches are refused to a scoped key
        globex = next(h["document_id"] for h in everything["hits"] if h["metadata"]["tenant"] == "globex")
        path = f"{server.url}/v1/documents/{quote(globex)}"  # record ids hold '#': percent-encoded in a URL
        refused = httpx.get(path, headers=_auth(acme.key))
        assert refused.status_code == 404
        assert httpx.get(path, headers=_auth(admin.key)).json()["metadata"]["tenant"] == "globex"
        upload = post("/v1/documents", {"name": "x.md", "text": "# X\n\nsome text here."}, acme.key)
        assert upload.status_code == 403 and "limited to some documents" in upload.json()["error"]["message"]
        assert post("/v1/batch", {"questions": [{"question": "refunds?"}]}, acme.key).status_code == 403
        # deny: a viewer may not read the metrics, whatever its role grants; an admin may
        denied = httpx.get(f"{server.url}/metrics", headers=_auth(viewer))
        assert denied.status_code == 403 and "governance.policies" in denied.json()["error"]["message"]
        assert httpx.get(f"{server.url}/metrics", headers=_auth(admin.key)).status_code == 200
        # and an unscoped viewer still searches everything
        assert tenants(post("/v1/search", {"query": "refunds", "k": 10}, viewer).json()["hits"]) == {"acme", "globex"}


@pytest.mark.parametrize(("policies", "message"), [
    ('  policies: [{effect: allow, principals: ["key:nothex"], actions: [query]}]\n', "principals"),
    ('  policies: [{effect: allow, principals: ["*"], actions: [fly]}]\n', "actions"),
    ('  policies: [{effect: deny, principals: ["*"], actions: [query], where: {tenant: a}}]\n', "takes no `where`"),
])
def test_a_malformed_policy_is_refused_with_where_it_is(tmp_path: Path, policies: str, message: str) -> None:
    (tmp_path / "flightdeck.yaml").write_text(
        "project: x\ndata:\n  sources: [{provider: files, path: ./d}]\n"
        "retrieval: {system: [hybrid_search, metadata_filtering]}\n"
        "governance:\n  access_control: [iam_policies]\n" + policies, "utf-8")
    with pytest.raises(SpecError, match=message):
        Project.load(tmp_path)


def test_a_scoping_policy_needs_metadata_filtering(tmp_path: Path) -> None:
    (tmp_path / "flightdeck.yaml").write_text(
        "project: x\ndata:\n  sources: [{provider: files, path: ./d}]\n"
        "governance:\n  access_control: [iam_policies]\n"
        '  policies: [{effect: allow, principals: ["*"], actions: [query], where: {tenant: a}}]\n', "utf-8")
    with pytest.raises(SpecError, match="needs metadata_filtering"):
        Project.load(tmp_path)
