"""Lineage of an answer or a release (checklist 8.1, dataset lineage): from a served answer (its trace id) to the
release that answered it, the chunks it retrieved and cited, their documents, source URIs and content hashes, the
dataset version that held them, the ingest run that wrote them and the spec — as a graph that prints as text, JSON,
Graphviz DOT or an OpenLineage run event.

``lineage_of(ref)`` takes a trace id (``tr_…``), a release (``rel_…``, ``v3``, an alias or a stage) or a chunk id.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from flightdeck.errors import FlightdeckError, WorkspaceError
from flightdeck.governance.lineage import chunk_lineage
from flightdeck.governance.releases import ReleaseError, Releases
from flightdeck.governance.versions import ingest_run, iso_time
from flightdeck.monitoring.traces import TraceNotFound, TraceStore
from flightdeck.workspace import Workspace
from flightdeck.workspace.index_versions import get_index_version

__all__ = ["LineageGraph", "LineageNotFound", "lineage_of", "FORMATS"]

FORMATS = ("text", "json", "dot", "openlineage")


class LineageNotFound(FlightdeckError, KeyError):
    """Nothing by that id: no trace, release or chunk (the API answers 404)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass
class LineageGraph:
    """Nodes (id -> {kind, label, ...facts}) and edges (from, to, relation) from what was asked about down to
    the source files."""

    root: str
    kind: str  # answer | release | chunk
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, node_id: str, kind: str, label: str, **facts: Any) -> str:
        node = self.nodes.setdefault(node_id, {"kind": kind, "label": label})
        node.update({k: v for k, v in facts.items() if v is not None})
        return node_id

    def link(self, a: str, b: str, relation: str) -> None:
        if (a, b, relation) not in self.edges:
            self.edges.append((a, b, relation))

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [{"id": k, **v} for k, v in self.nodes.items() if v["kind"] == kind]

    def to_dict(self) -> dict[str, Any]:
        return {"root": self.root, "kind": self.kind, "nodes": [{"id": k, **v} for k, v in self.nodes.items()],
                "edges": [{"from": a, "to": b, "relation": r} for a, b, r in self.edges]}

    # renderings ------------------------------------------------------------------------------------------
    def to_text(self) -> str:
        lines: list[str] = []
        children: dict[str, list[tuple[str, str]]] = {}
        for a, b, r in self.edges:
            children.setdefault(a, []).append((b, r))

        def walk(node_id: str, depth: int, relation: str, seen: set[str]) -> None:
            node = self.nodes[node_id]
            facts = ", ".join(f"{k} {v}" for k, v in node.items() if k not in ("kind", "label") and
                              isinstance(v, str | int | float | bool))
            prefix = "  " * depth + (f"{relation}: " if relation else "")
            lines.append(f"{prefix}{node['kind']} {node['label']}" + (f" ({facts})" if facts else ""))
            if node_id in seen:
                return
            for child, rel in children.get(node_id, []):
                walk(child, depth + 1, rel, seen | {node_id})

        walk(self.root, 0, "", set())
        return "\n".join(lines)

    def to_dot(self) -> str:
        def quote(text: str) -> str:
            return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'

        shapes = {"answer": "note", "release": "box3d", "chunk": "box", "document": "folder", "source": "cylinder",
                  "dataset_version": "tab", "index_version": "tab", "run": "ellipse", "spec": "component",
                  "evaluation": "ellipse"}
        out = ["digraph lineage {", "  rankdir=LR;", "  node [fontname=Helvetica];"]
        for node_id, node in self.nodes.items():
            label = f"{node['kind']}\\n{node['label']}"
            out.append(f"  {quote(node_id)} [label={quote(label)}, shape={shapes.get(node['kind'], 'box')}];")
        for a, b, r in self.edges:
            out.append(f"  {quote(a)} -> {quote(b)} [label={quote(r)}];")
        out.append("}")
        return "\n".join(out)

    def to_openlineage(self, namespace: str, producer: str) -> dict[str, Any]:
        """One OpenLineage 2-0-2 RunEvent (COMPLETE) of the job that made the root (an answer, a release): its
        inputs are the source files, the dataset version and the index version; its output the root."""
        from datetime import UTC, datetime

        root = self.nodes[self.root]
        inputs = [{"namespace": "file" if n["id"].startswith("file://") or "/" in n["id"] else namespace,
                   "name": n["id"], "facets": {}} for n in self.of_kind("source")]
        inputs += [{"namespace": namespace, "name": f"{kind}/{n['id']}", "facets": {}}
                   for kind in ("dataset_version", "index_version") for n in self.of_kind(kind)]
        run_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"flightdeck:{self.kind}:{self.root}"))
        return {
            "eventType": "COMPLETE",
            "eventTime": root.get("created_at") or datetime.now(UTC).isoformat(),
            "run": {"runId": run_id, "facets": {}},
            "job": {"namespace": namespace, "name": f"flightdeck.{self.kind}", "facets": {}},
            "inputs": inputs,
            "outputs": [{"namespace": namespace, "name": f"{self.kind}/{self.root}", "facets": {}}],
            "producer": producer,
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        }

    def render(self, fmt: str, *, namespace: str = "flightdeck", producer: str = "") -> str:
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)
        if fmt == "dot":
            return self.to_dot()
        if fmt == "openlineage":
            return json.dumps(self.to_openlineage(namespace, producer), indent=2, ensure_ascii=False)
        if fmt == "text":
            return self.to_text()
        raise ValueError(f"format {fmt!r}: one of {', '.join(FORMATS)}")


def _add_chunk(graph: LineageGraph, ws: Workspace, chunk_id: str) -> str:
    lin = chunk_lineage(ws, chunk_id)
    node = graph.add(lin.chunk_id, "chunk", lin.chunk_id[:16], heading=lin.heading or None, current=lin.current)
    doc = graph.add(lin.document_id, "document", lin.document_id, content_hash=lin.content_hash[:16])
    graph.link(node, doc, "of")
    src = graph.add(lin.source_uri, "source", lin.source_uri, content_hash=lin.content_hash)
    graph.link(doc, src, "read from")
    run = lin.ingest_run
    run_node = graph.add(f"run/{run['id']}", "run", str(run["id"]), status=run.get("status"),
                         finished_at=run.get("finished_at"))
    graph.link(doc, run_node, "written by")
    for v in lin.dataset_versions:
        dv = graph.add(v["id"], "dataset_version", v["id"][:16], created_at=v.get("created_at"))
        graph.link(doc, dv, "in")
    return node


def _add_release(graph: LineageGraph, ws: Workspace, releases: Releases, ref: str) -> str:
    release = releases.get(ref)
    manifest = releases.manifest(release)
    node = graph.add(release.id, "release", f"{release.name} ({release.id})", stage=release.stage,
                     created_by=release.created_by, created_at=iso_time(release.created_at))
    spec = graph.add(f"spec/{manifest['spec']['sha256']}", "spec", manifest["spec"]["sha256"][:16],
                     artifact=manifest["spec"]["artifact"])
    graph.link(node, spec, "configured by")
    iv = manifest["index_version"]
    if iv.get("id"):
        index = graph.add(iv["id"], "index_version", iv["id"][:16], store=iv.get("store"),
                          embedder=iv.get("embedder"), chunks=iv.get("chunk_count"))
        graph.link(node, index, "searches")
        if iv.get("dataset_version"):
            dv = graph.add(iv["dataset_version"], "dataset_version", iv["dataset_version"][:16])
            graph.link(index, dv, "built from")
            run = ingest_run(ws, iv.get("run_id") or "")
            run_node = graph.add(f"run/{run['id']}", "run", str(run["id"]), status=run.get("status"))
            graph.link(index, run_node, "built by")
    for kind, model in sorted(manifest["models"].items()):
        m = graph.add(f"{kind}/{model.get('model_id') or model.get('provider')}", kind,
                      str(model.get("model_id") or model.get("provider")),
                      files=len(model.get("files") or {}))
        graph.link(node, m, "uses")
    ev = manifest.get("evaluation")
    if ev:
        e = graph.add(f"eval/{ev['run_id']}", "evaluation", str(ev["run_id"]), eval_set=ev.get("eval_set"),
                      passed=ev.get("passed"))
        graph.link(node, e, "measured by")
    return node


def _release_documents(graph: LineageGraph, ws: Workspace, releases: Releases, release_id: str) -> None:
    """A release's documents: each one's source and content hash in its dataset version (no chunks)."""
    manifest = releases.manifest(release_id)
    dataset = manifest.get("dataset_version")
    if not dataset:
        return
    entries = json.loads(ws.artifacts.get_bytes(dataset)).get("documents", [])
    for doc_id, content_hash, _media, source_uri, _pipeline, _record in entries:
        doc = graph.add(doc_id, "document", doc_id, content_hash=content_hash[:16])
        graph.link(dataset, doc, "holds")
        src = graph.add(source_uri, "source", source_uri, content_hash=content_hash)
        graph.link(doc, src, "read from")


def lineage_of(ws: Workspace, releases: Releases, ref: str) -> LineageGraph:
    """The lineage graph of ``ref``: a trace id, a release or a chunk id (said in that order)."""
    ref = (ref or "").strip()
    if not ref:
        raise FlightdeckError("give a trace id (tr_…), a release (rel_…, v3, production) or a chunk id")
    if ref.startswith("tr_"):
        return _answer(ws, releases, ref)
    try:
        release = releases.get(ref)
    except ReleaseError:
        release = None
    if release is not None:
        graph = LineageGraph(release.id, "release")
        _add_release(graph, ws, releases, release.id)
        _release_documents(graph, ws, releases, release.id)
        return graph
    try:
        graph = LineageGraph("", "chunk")
        graph.root = _add_chunk(graph, ws, ref)
        return graph
    except WorkspaceError:
        raise LineageNotFound(f"{ref!r} is no trace id (tr_…), release or chunk of this workspace; "
                              "`flightdeck release list` and `flightdeck search` show ids") from None


def _answer(ws: Workspace, releases: Releases, trace_id: str) -> LineageGraph:
    try:
        trace = TraceStore(ws).get(trace_id)
    except TraceNotFound:
        raise LineageNotFound(f"no trace {trace_id!r} in this workspace (traces are kept when "
                              "deployment.server.store_traces is on)") from None
    graph = LineageGraph(trace.id, "answer")
    root = graph.add(trace.id, "answer", trace.id, operation=trace.operation, created_at=iso_time(trace.created_at),
                     key=trace.key_id, found=trace.found, index_version=(trace.index_version or "")[:16] or None)
    release_id = trace.details.get("release")
    if release_id:
        graph.link(root, _add_release(graph, ws, releases, release_id), "answered by")
    elif trace.index_version:
        iv = get_index_version(ws, trace.index_version)
        if iv is not None:
            index = graph.add(iv.id, "index_version", iv.id[:16], store=iv.store, embedder=iv.embedder)
            graph.link(root, index, "searched")
            dv = graph.add(iv.dataset_version, "dataset_version", iv.dataset_version[:16])
            graph.link(index, dv, "built from")
    cited = {c.get("chunk_id") for c in trace.details.get("citations") or []}
    for hit in trace.details.get("retrieved") or []:
        chunk = hit.get("chunk_id")
        if not chunk:
            continue
        try:
            node = _add_chunk(graph, ws, chunk)
        except WorkspaceError:  # a chunk no record holds any more (pruned workspace): named, not followed
            node = graph.add(chunk, "chunk", chunk[:16], missing=True)
        graph.nodes[node]["score"] = hit.get("score")
        graph.link(root, node, "cited" if chunk in cited else "retrieved")
    return graph
