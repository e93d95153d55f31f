"""What a release is made of, read from a project's components and workspace (:class:`ReleaseInputs`), and the
check that the models a release would be served with are the ones it recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flightdeck.errors import WorkspaceError
from flightdeck.governance.releases import ReleaseInputs, hash_files
from flightdeck.workspace import CURRENT_INDEX, Workspace
from flightdeck.workspace.index_versions import get_index_version

__all__ = ["gather_release_inputs", "model_identity", "model_file_problems"]


def _files(component: Any) -> dict[str, Path]:
    """A component's local weight files (``model_files()``: name -> path), or none (a remote API, extractive)."""
    files = getattr(component, "model_files", None)
    return dict(files()) if callable(files) else {}


def model_identity(provider: str, component: Any) -> dict[str, Any]:
    """``{provider, model_id, files: {name: {sha256, size}}}`` of an embedder or a generator."""
    files = _files(component)
    hashed = {name: meta for name, meta in
              ((n, hash_files(p.parent, [p])[p.name]) for n, p in sorted(files.items()))}
    return {"provider": provider, "model_id": str(getattr(component, "model_id", "") or ""), "files": hashed}


def model_file_problems(kind: str, recorded: dict[str, Any], component: Any) -> list[str]:
    """How ``component`` (the model a release would be served with) differs from the identity ``recorded`` in the
    release: another model, or weight files missing or changed."""
    problems = []
    model_id = str(getattr(component, "model_id", "") or "")
    if recorded.get("model_id") and model_id != recorded["model_id"]:
        problems.append(f"the {kind} is {model_id}, the release recorded {recorded['model_id']}")
        return problems
    files = _files(component)
    for name, meta in sorted((recorded.get("files") or {}).items()):
        path = files.get(name)
        if path is None or not path.is_file():
            problems.append(f"the {kind}'s file {name} is missing")
            continue
        now = hash_files(path.parent, [path])[path.name]
        if now != meta:
            problems.append(f"the {kind}'s file {name} ({path}) does not match the release's hash")
    return problems


def _prompts(generator: Any) -> list[dict[str, Any]]:
    template = getattr(generator, "prompt_template", None)
    if not callable(template):
        return []  # an extractive answerer writes no prompt
    record = template().record
    return [dict(record)]


def gather_release_inputs(ws: Workspace, *, project: str, spec_text: str, spec_hash: str, embedder: Any,
                          embedder_provider: str, generator: Any, generator_provider: str, store_versioned: bool,
                          gates_configured: bool, runs: Any) -> ReleaseInputs:
    """The inputs of a release of the workspace's current index version: its files hashed, the models identified,
    and the latest succeeded evaluation of that index version made with this very spec (``runs``: the
    :class:`~flightdeck.models.trackers.builtin.ExperimentRuns` of the workspace)."""
    current = ws.get_state(CURRENT_INDEX)
    if current is None:
        raise WorkspaceError(f"{ws.root}: no index yet; run `flightdeck run` before `flightdeck release create`")
    version = get_index_version(ws, current)
    if version is None:
        raise WorkspaceError(f"index version {current} is recorded as current but missing; run `flightdeck run`")
    index_files = hash_files(ws.store_folder(version.store, version.id)) if store_versioned else {}
    evaluation = None
    for run in runs.list("eval", limit=200):
        if run.status == "succeeded" and run.index_version == version.id and run.spec_hash == spec_hash:
            evaluation = {"run_id": run.id, "eval_set": run.name, "metrics": run.metrics, "gates": run.gates,
                          "passed": run.passed, "artifacts": run.artifacts}
            break
    return ReleaseInputs(project=project, spec_text=spec_text, spec_hash=spec_hash, index_version=version.to_dict(),
                         index_files=index_files, embedder=model_identity(embedder_provider, embedder),
                         generator=model_identity(generator_provider, generator), prompts=_prompts(generator),
                         evaluation=evaluation, gates_configured=gates_configured)
