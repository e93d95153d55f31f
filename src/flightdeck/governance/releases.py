"""Releases (checklist 5.4, 8.1 model versioning, 5.1 artifact registry): immutable, content-addressed records of
what would be served, moved through stages by a policy.

A release is its **manifest**: the spec's text and hash, the dataset version, the index version and the hash of
every file of its folder, the embedder's and generator's identities with the hashes of their weight files, the
prompt templates' hashes, and the evaluation that measured that index version (metrics, gate verdicts). The
manifest is an artifact of the workspace (canonical JSON); its SHA-256 names the release (``rel_<16 hex>``), so
the same content is the same release. What changes over its life is kept beside it: its **stage** (candidate →
staging → production → archived), **aliases**, and its **events** (created, approved, rejected, promoted, rolled
back, archived, overridden) — each with who, when, their role and why.

Promotion is decided here and nowhere else (CLI, API and library call this class), by
:class:`~flightdeck.spec.releases.ApprovalPolicy`: approvals from distinct people in the allowed roles (not the
author unless allowed), no standing rejection, gates passed (an admin may override a failed gate with a recorded
reason; nothing overrides the rest), a clean red-team run when asked, and the release's artifacts matching their
recorded hashes. One release is in production at a time; promoting another archives it, and ``rollback`` brings
back the one before.

Model registries (``mirrors``, see :mod:`flightdeck.governance.registries`) are told of each change after it
commits; each answer or failure is an event (``mirrored`` / ``mirror_failed``), and :meth:`Releases.sync` brings a
registry that missed some level with the workspace later.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import logging
import os
import re
import tarfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from flightdeck.errors import FlightdeckError
from flightdeck.governance.access import Permission, Role, allowed
from flightdeck.spec.releases import STAGES, ApprovalPolicy
from flightdeck.workspace import Workspace
from flightdeck.workspace.schema import (
    dataset_version_documents,
    dataset_versions,
    index_versions,
    release_aliases,
    release_events,
    releases,
)

__all__ = ["Release", "ReleaseEvent", "ReleaseInputs", "Releases", "ReleaseError", "ReleaseNotFound", "PolicyRefused",
           "ReleaseIntegrityError", "PolicyCheck", "MANIFEST_FORMAT", "hash_files", "Actor"]

MANIFEST_FORMAT = "flightdeck.release/1"
log = logging.getLogger("flightdeck.releases")
_CHUNK = 1 << 20
_ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


class ReleaseError(FlightdeckError):
    """A release that does not exist, an impossible transition, a bad archive."""


class ReleaseNotFound(ReleaseError, KeyError):
    """No release by that name (the API answers 404)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class PolicyRefused(ReleaseError):
    """A promotion the approval policy does not allow yet: ``reasons`` says each thing missing."""

    def __init__(self, message: str, reasons: list[str]) -> None:
        super().__init__(message)
        self.reasons = reasons


class ReleaseIntegrityError(ReleaseError):
    """A release whose artifacts do not match the hashes its manifest recorded."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class Actor:
    """Who acts: ``key:<key id>`` with its role for an API key, ``user:<OS user>`` (admin of their own
    workspace) for the CLI and the library."""

    name: str
    role: Role

    @classmethod
    def local(cls) -> Actor:
        import getpass

        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no user name in the environment or the password database
            user = f"uid-{os.getuid()}"
        return cls(f"user:{user}", Role.ADMIN)


@dataclass(frozen=True)
class ReleaseInputs:
    """What a release is made of, gathered by the project facade from the spec and the workspace."""

    project: str
    spec_text: str
    spec_hash: str
    index_version: dict[str, Any]  # the index_versions row
    index_files: dict[str, dict[str, Any]]  # path in the version's folder -> {sha256, size}; {} for a server store
    embedder: dict[str, Any]  # {provider, model_id, files: {name: {sha256, size}}}
    generator: dict[str, Any]
    prompts: list[dict[str, Any]]  # {template, sha256}
    evaluation: dict[str, Any] | None  # {run_id, eval_set, metrics, gates, passed, artifacts}
    gates_configured: bool  # the spec sets evaluation.gates


@dataclass(frozen=True)
class Release:
    """One row of ``releases`` with its aliases."""

    id: str
    number: int
    created_at: float
    created_by: str
    manifest: str
    spec_hash: str
    dataset_version: str | None
    index_version: str | None
    eval_run: str | None
    gates_passed: bool | None
    stage: str
    summary: dict[str, Any]
    aliases: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"v{self.number}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["name"] = self.name
        out["aliases"] = list(self.aliases)
        return out


@dataclass(frozen=True)
class ReleaseEvent:
    id: int
    release_id: str
    at: float
    actor: str
    role: str | None
    event: str
    from_stage: str | None
    to_stage: str | None
    comment: str | None
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PolicyCheck:
    """Whether a promotion to ``stage`` is allowed now: ``missing`` lists what is not met (empty: allowed);
    ``overridable`` is true when only failed gates stand in the way (an admin may override with a reason)."""

    stage: str
    approvals: list[str] = field(default_factory=list)  # the actors whose approvals count
    required: int = 0
    missing: list[str] = field(default_factory=list)
    gates_missing: list[str] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return not self.missing and not self.gates_missing

    @property
    def overridable(self) -> bool:
        return not self.missing and bool(self.gates_missing)

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "allowed": self.allowed, "approvals": self.approvals,
                "required": self.required, "missing": self.missing + self.gates_missing,
                "overridable": self.overridable}


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def hash_files(root: Path, paths: Iterable[Path] | None = None) -> dict[str, dict[str, Any]]:
    """``{relative path: {sha256, size}}`` of every file under ``root`` (or of ``paths``, named by file name)."""
    root = Path(root)
    files = sorted(p for p in root.rglob("*") if p.is_file()) if paths is None else [Path(p) for p in paths]
    out: dict[str, dict[str, Any]] = {}
    for p in files:
        name = p.relative_to(root).as_posix() if paths is None else p.name
        out[name] = {"sha256": _hash_file(p), "size": p.stat().st_size}
    return out


def _release(row: Any, aliases: tuple[str, ...] = ()) -> Release:
    m = row._mapping if hasattr(row, "_mapping") else row
    return Release(m["id"], m["number"], m["created_at"], m["created_by"], m["manifest"], m["spec_hash"],
                   m["dataset_version"], m["index_version"], m["eval_run"],
                   None if m["gates_passed"] is None else bool(m["gates_passed"]), m["stage"], dict(m["summary"]),
                   aliases)


def _mirror_name(mirror: Any) -> str:
    return str(getattr(mirror, "name", type(mirror).__name__))


class Releases:
    """The releases of one workspace, moved by ``policy``; every change is an event and, with ``audit``, an
    entry of the audit log (any object with ``append(actor, action, target, details)``)."""

    def __init__(self, ws: Workspace, policy: ApprovalPolicy | None = None, *, audit: Any = None,
                 mirrors: Sequence[Any] = (), clock: Callable[[], float] = time.time) -> None:
        self.ws = ws
        self.policy = policy or ApprovalPolicy()
        self.audit = audit
        # model registries that mirror every release and stage (deployment.model_registry: mlflow, wandb…; see
        # governance/registries); the workspace stays the source of truth, a mirror's failure is an event
        self.mirrors = list(mirrors)
        self.clock = clock

    # --- creating -----------------------------------------------------------------------------------------
    def manifest_of(self, inputs: ReleaseInputs) -> dict[str, Any]:
        """The manifest of ``inputs`` (the spec's text stored as an artifact and named by its digest)."""
        spec_artifact = self.ws.artifacts.put_bytes(inputs.spec_text.encode())
        iv = inputs.index_version
        evaluation = None
        if inputs.evaluation is not None:
            ev = inputs.evaluation
            evaluation = {"run_id": ev.get("run_id"), "eval_set": ev.get("eval_set"),
                          "metrics": ev.get("metrics", {}), "gates": ev.get("gates", []),
                          "passed": ev.get("passed"), "artifacts": dict(ev.get("artifacts") or {})}
        return {
            "format": MANIFEST_FORMAT,
            "project": inputs.project,
            "spec": {"sha256": inputs.spec_hash, "artifact": spec_artifact},
            "dataset_version": iv.get("dataset_version"),
            "index_version": {k: iv.get(k) for k in ("id", "dataset_version", "embedder", "dim", "store",
                                                     "chunk_count", "index_artifact", "ids_artifact", "collection",
                                                     "run_id", "created_at")},
            "index_files": inputs.index_files,
            "models": {"embedder": inputs.embedder, "generator": inputs.generator},
            "prompts": inputs.prompts,
            "evaluation": evaluation,
            "gates_configured": inputs.gates_configured,
        }

    def create(self, inputs: ReleaseInputs, actor: Actor, comment: str | None = None) -> tuple[Release, bool]:
        """A candidate release of ``inputs``; ``(release, created)`` — the existing release when one has the same
        content (a release is its manifest)."""
        manifest = self.manifest_of(inputs)
        data = _canonical(manifest)
        digest = self.ws.artifacts.put_bytes(data)
        release_id = "rel_" + digest[:16]
        existing = self._row(release_id)
        if existing is not None:
            return existing, False
        ev = manifest["evaluation"]
        gates_passed = None if ev is None or ev.get("passed") is None else bool(ev["passed"])
        summary = {"index_version": (manifest["index_version"]["id"] or "")[:12],
                   "generator": inputs.generator.get("model_id") or inputs.generator.get("provider"),
                   "embedder": inputs.embedder.get("model_id"),
                   "eval_set": ev.get("eval_set") if ev else None,
                   "metrics": {k: v for k, v in (ev.get("metrics") or {}).items()
                               if isinstance(v, int | float)} if ev else {},
                   "gates_missed": [g.get("gate") for g in (ev.get("gates") or []) if not g.get("passed")] if ev
                   else [], "gates_configured": inputs.gates_configured}
        now = self.clock()
        with self._write() as conn:
            number = (conn.execute(select(func.max(releases.c.number))).scalar() or 0) + 1
            conn.execute(insert(releases).values(
                id=release_id, number=number, created_at=now, created_by=actor.name, manifest=digest,
                spec_hash=inputs.spec_hash, dataset_version=manifest["dataset_version"],
                index_version=manifest["index_version"]["id"], eval_run=ev.get("run_id") if ev else None,
                gates_passed=None if gates_passed is None else int(gates_passed), stage="candidate",
                summary=summary))
            self._event(conn, release_id, actor, "created", None, "candidate", comment, {"manifest": digest})
            self._audit(conn, actor, "release.created", release_id, {"release": f"v{number}", "manifest": digest,
                                                                     "gates_passed": gates_passed})
        release = self.get(release_id)
        self._mirror("publish", release, actor, manifest=manifest)
        return release, True

    # --- reading --------------------------------------------------------------------------------------------
    def _aliases(self, release_id: str) -> tuple[str, ...]:
        with self.ws.engine.connect() as conn:
            return tuple(r[0] for r in conn.execute(select(release_aliases.c.alias).where(
                release_aliases.c.release_id == release_id).order_by(release_aliases.c.alias)))

    def _row(self, release_id: str) -> Release | None:
        with self.ws.engine.connect() as conn:
            row = conn.execute(select(releases).where(releases.c.id == release_id)).first()
        return None if row is None else _release(row, self._aliases(release_id))

    def list(self, stage: str | None = None) -> list[Release]:
        """Every release, newest first (or those in ``stage``)."""
        query = select(releases).order_by(releases.c.number.desc())
        if stage is not None:
            query = query.where(releases.c.stage == stage)
        with self.ws.engine.connect() as conn:
            rows = conn.execute(query).all()
            aliases: dict[str, list[str]] = {}
            for alias, rid in conn.execute(select(release_aliases.c.alias, release_aliases.c.release_id)):
                aliases.setdefault(rid, []).append(alias)
        return [_release(r, tuple(sorted(aliases.get(r._mapping["id"], [])))) for r in rows]

    def get(self, ref: str) -> Release:
        """The release ``ref`` names: its id (or a unique prefix of it), ``v3`` or ``3``, an alias, or a stage
        (``production``, ``staging``: the release in it; ``candidate``: the newest candidate)."""
        ref = (ref or "").strip()
        if not ref:
            raise ReleaseError("no release named; give an id (rel_…), a number (v3), an alias or a stage")
        with self.ws.engine.connect() as conn:
            if ref in STAGES and ref != "archived":
                row = conn.execute(select(releases).where(releases.c.stage == ref)
                                   .order_by(releases.c.number.desc())).first()
                if row is None:
                    raise ReleaseNotFound(f"no release is in {ref}; `flightdeck release list` shows the stages")
                return _release(row, self._aliases(row._mapping["id"]))
            alias = conn.execute(select(release_aliases.c.release_id).where(release_aliases.c.alias == ref)).first()
            if alias is not None:
                found = self._row(alias[0])
                if found is not None:
                    return found
            number = re.fullmatch(r"v?(\d{1,9})", ref)  # a release number; longer digits cannot be one
            if number:
                row = conn.execute(select(releases).where(releases.c.number == int(number.group(1)))).first()
                if row is not None:
                    return _release(row, self._aliases(row._mapping["id"]))
            ids = [r[0] for r in conn.execute(select(releases.c.id).where(
                releases.c.id.startswith(ref, autoescape=True)))]
        if len(ids) == 1:
            found = self._row(ids[0])
            assert found is not None
            return found
        if len(ids) > 1:
            raise ReleaseError(f"release {ref!r} is ambiguous ({', '.join(ids[:5])}…); give more of the id")
        raise ReleaseNotFound(f"no release {ref!r}; `flightdeck release list` shows them")

    def manifest(self, ref: str | Release) -> dict[str, Any]:
        release = ref if isinstance(ref, Release) else self.get(ref)
        try:
            data = self.ws.artifacts.get_bytes(release.manifest)
        except FileNotFoundError:
            raise ReleaseIntegrityError(f"release {release.name} ({release.id}): its manifest artifact "
                                        f"{release.manifest[:12]} is missing from the workspace",
                                        ["manifest missing"]) from None
        return json.loads(data)

    def events(self, ref: str | Release) -> list[ReleaseEvent]:
        release = ref if isinstance(ref, Release) else self.get(ref)
        with self.ws.engine.connect() as conn:
            rows = conn.execute(select(release_events).where(release_events.c.release_id == release.id)
                                .order_by(release_events.c.id)).mappings().all()
        return [ReleaseEvent(r["id"], r["release_id"], r["at"], r["actor"], r["role"], r["event"], r["from_stage"],
                             r["to_stage"], r["comment"], dict(r["details"])) for r in rows]

    # --- integrity ------------------------------------------------------------------------------------------
    def verify(self, ref: str | Release, *, model_files: Callable[[str, dict[str, Any]], list[str]] | None = None
               ) -> list[str]:
        """What of the release does not match its manifest (empty: it is intact): the manifest itself, the spec,
        the dataset version's manifest and records, the index version's files; ``model_files(kind, identity)``
        checks the models' weight files where the caller can find them."""
        release = ref if isinstance(ref, Release) else self.get(ref)
        problems: list[str] = []
        store = self.ws.artifacts
        if not store.exists(release.manifest):
            return [f"the manifest artifact {release.manifest[:12]} is missing"]
        data = store.get_bytes(release.manifest)
        if hashlib.sha256(data).hexdigest() != release.manifest or "rel_" + release.manifest[:16] != release.id:
            return [f"the manifest artifact {release.manifest[:12]} was changed (its hash no longer matches)"]
        manifest = json.loads(data)

        def check(digest: str | None, what: str) -> bool:
            if not digest:
                return True
            if not store.exists(digest):
                problems.append(f"{what} (artifact {digest[:12]}) is missing")
                return False
            if _hash_file(store.path(digest)) != digest:
                problems.append(f"{what} (artifact {digest[:12]}) was changed")
                return False
            return True

        recorded = [e.to_stage for e in self.events(release) if e.to_stage]
        if recorded and recorded[-1] != release.stage:
            problems.append(f"its stage reads {release.stage}, but its events last moved it to {recorded[-1]}: the "
                            "releases table was edited outside flightdeck")
        check(manifest["spec"]["artifact"], "the spec")
        dataset = manifest.get("dataset_version")
        if dataset and check(dataset, f"dataset version {dataset[:12]}'s manifest"):
            for entry in json.loads(store.get_bytes(dataset)).get("documents", []):
                check(entry[5], f"the record of document {entry[0]}")
        iv = manifest["index_version"]
        check(iv.get("index_artifact"), f"index version {str(iv.get('id'))[:12]}'s index")
        if manifest.get("index_files"):
            folder = self.ws.store_folder(iv["store"], iv["id"])
            for name, meta in sorted(manifest["index_files"].items()):
                path = folder / name
                if not path.is_file():
                    problems.append(f"index file {name} of index version {iv['id'][:12]} is missing ({folder})")
                elif path.stat().st_size != meta["size"] or _hash_file(path) != meta["sha256"]:
                    problems.append(f"index file {name} of index version {iv['id'][:12]} was changed")
        for name, digest in sorted(((manifest.get("evaluation") or {}).get("artifacts") or {}).items()):
            check(digest, f"evaluation artifact {name}")
        if model_files is not None:
            for kind, identity in sorted(manifest["models"].items()):
                problems.extend(model_files(kind, identity))
        return problems

    def require_intact(self, release: Release, model_files: Any = None) -> None:
        problems = self.verify(release, model_files=model_files)
        if problems:
            raise ReleaseIntegrityError(
                f"release {release.name} ({release.id}) does not match its recorded hashes: " + "; ".join(problems)
                + ". It cannot be promoted or served; create a new release from a clean build", problems)

    # --- the policy -----------------------------------------------------------------------------------------
    def check_policy(self, ref: str | Release, stage: str = "production") -> PolicyCheck:
        """What a promotion of ``ref`` to ``stage`` still needs under the policy."""
        release = ref if isinstance(ref, Release) else self.get(ref)
        policy = self.policy
        result = PolicyCheck(stage, required=policy.required if stage in policy.stages else 0)
        if stage not in policy.stages:
            return result
        latest: dict[str, ReleaseEvent] = {}  # each person's latest verdict counts
        for e in self.events(release):
            if e.event in ("approved", "rejected"):
                latest[e.actor] = e
        rejected = sorted(a for a, e in latest.items() if e.event == "rejected")
        counted = sorted(a for a, e in latest.items() if e.event == "approved" and e.role in policy.roles
                         and (policy.self_approval or a != release.created_by))
        result.approvals = counted
        if rejected:
            result.missing.append(f"rejected by {', '.join(rejected)} (a rejection stands until that person "
                                  "approves)")
        if len(counted) < policy.required:
            who = " or ".join(policy.roles)
            result.missing.append(f"{len(counted)} of {policy.required} approval(s) from an {who}"
                                  + ("" if policy.self_approval else f" other than its author {release.created_by}"))
        if policy.red_team_clean:
            runs = [e for e in self.events(release) if e.event == "red_team"]
            if not runs:
                result.missing.append("no red-team run on this release (`flightdeck redteam`)")
            elif runs[-1].details.get("successful_attacks", 1) != 0:
                result.missing.append(f"the last red-team run found {runs[-1].details.get('successful_attacks')} "
                                      "successful attack(s)")
        if policy.gates_must_pass:
            summary = release.summary
            if release.gates_passed is False:
                result.gates_missing.append("missed gate(s): " + ", ".join(summary.get("gates_missed") or ["?"]))
            elif release.gates_passed is None and summary.get("gates_configured"):
                result.gates_missing.append("no evaluation of its index version with the spec's gates "
                                            "(`flightdeck eval --gate`, then create the release again)")
        return result

    # --- moving it ------------------------------------------------------------------------------------------
    def review(self, ref: str, actor: Actor, verdict: str, comment: str | None = None) -> ReleaseEvent:
        """Approve or reject ``ref`` (``verdict``: approved | rejected) as ``actor``."""
        if verdict not in ("approved", "rejected"):
            raise ValueError(f"verdict {verdict!r}: approved or rejected")
        if not allowed(actor.role, Permission.RELEASES_APPROVE):
            raise PolicyRefused(f"{actor.name}: a {actor.role.value} may not approve or reject releases; an "
                                "approver or admin may", ["role"])
        release = self.get(ref)
        if release.stage == "archived":
            raise ReleaseError(f"release {release.name} is archived; reviews are for releases that may be promoted")
        if verdict == "approved" and not self.policy.self_approval and actor.name == release.created_by:
            raise PolicyRefused(f"{actor.name} created release {release.name} and may not approve it "
                                "(governance.approvals.self_approval is false)", ["self approval"])
        with self._write() as conn:
            event_id = self._event(conn, release.id, actor, verdict, None, None, comment, {})
            self._audit(conn, actor, f"release.{verdict}", release.id, {"release": release.name, "comment": comment})
        return next(e for e in self.events(release) if e.id == event_id)

    def promote(self, ref: str, actor: Actor, stage: str = "production", *, override_reason: str | None = None,
                comment: str | None = None, model_files: Any = None) -> Release:
        """Move ``ref`` to ``stage`` when the policy allows; to production, the release there is archived.

        ``override_reason`` (admin only) lets a release whose gates failed through, recorded with the reason;
        it never replaces approvals, a rejection, a red-team run or intact artifacts."""
        if stage not in ("staging", "production"):
            raise ReleaseError(f"promote to staging or production, not {stage!r} (`release archive` archives)")
        if not allowed(actor.role, Permission.RELEASES_PROMOTE):
            raise PolicyRefused(f"{actor.name}: a {actor.role.value} may not promote releases; an admin may",
                                ["role"])
        release = self.get(ref)
        if release.stage == stage:
            raise ReleaseError(f"release {release.name} is already in {stage}")
        if release.stage == "archived" and stage == "production":
            raise ReleaseError(f"release {release.name} is archived; bring it back with `flightdeck release "
                               "rollback --to` (it keeps the approvals it was promoted with)")
        if release.stage == "production" and stage == "staging":
            raise ReleaseError(f"release {release.name} is in production; promote another release or roll back")
        self.require_intact(release, model_files)
        check = self.check_policy(release, stage)
        if check.missing or (check.gates_missing and not override_reason):
            reasons = check.missing + check.gates_missing
            hint = (" An admin may override the failed gates with --override-reason." if check.overridable else "")
            raise PolicyRefused(f"release {release.name} cannot be promoted to {stage}: " + "; ".join(reasons)
                                + "." + hint, reasons)
        details: dict[str, Any] = {"approvals": check.approvals}
        if check.gates_missing and override_reason:
            if actor.role is not Role.ADMIN:
                raise PolicyRefused("only an admin may override a failed gate", ["role"])
            if not override_reason.strip():
                raise PolicyRefused("an override needs a reason", ["reason"])
            details["override"] = {"reason": override_reason.strip(), "gates": check.gates_missing}
        return self._move(release, stage, actor, "promoted", comment, details)

    def rollback(self, actor: Actor, to: str | None = None, comment: str | None = None,
                 model_files: Any = None) -> Release:
        """Put back in production the release that was there before the current one (or ``to``, a release that
        was in production before); the current one is archived."""
        if not allowed(actor.role, Permission.RELEASES_PROMOTE):
            raise PolicyRefused(f"{actor.name}: a {actor.role.value} may not roll back releases; an admin may",
                                ["role"])
        current = self.list("production")
        with self.ws.engine.connect() as conn:
            served = [r[0] for r in conn.execute(
                select(release_events.c.release_id).where(release_events.c.to_stage == "production")
                .order_by(release_events.c.id.desc()))]
        if to is not None:
            target = self.get(to)
            if target.id not in served:
                raise ReleaseError(f"release {target.name} was never in production; promote it instead (the "
                                   "approval policy applies)")
        else:
            earlier = [rid for rid in dict.fromkeys(served) if not current or rid != current[0].id]
            if not earlier:
                raise ReleaseError("no earlier production release to roll back to")
            target = self.get(earlier[0])
        if current and target.id == current[0].id:
            raise ReleaseError(f"release {target.name} is the one in production")
        self.require_intact(target, model_files)
        return self._move(target, "production", actor, "rolled_back", comment,
                          {"replaced": current[0].id if current else None})

    def archive(self, ref: str, actor: Actor, comment: str | None = None) -> Release:
        if not allowed(actor.role, Permission.RELEASES_PROMOTE):
            raise PolicyRefused(f"{actor.name}: a {actor.role.value} may not archive releases; an admin may",
                                ["role"])
        release = self.get(ref)
        if release.stage == "archived":
            raise ReleaseError(f"release {release.name} is already archived")
        return self._move(release, "archived", actor, "archived", comment, {})

    def _move(self, release: Release, stage: str, actor: Actor, event: str, comment: str | None,
              details: dict[str, Any]) -> Release:
        displaced: list[tuple[str, str]] = []
        with self._write() as conn:
            if stage in ("production", "staging"):  # one release per serving stage: the one there steps aside
                for other in conn.execute(select(releases.c.id, releases.c.stage).where(
                        releases.c.stage == stage, releases.c.id != release.id)).all():
                    after = "archived" if stage == "production" else "candidate"
                    displaced.append((other[0], after))
                    conn.execute(update(releases).where(releases.c.id == other[0]).values(stage=after))
                    self._event(conn, other[0], actor, "archived" if after == "archived" else "replaced", stage,
                                after, None, {"replaced_by": release.id})
            conn.execute(update(releases).where(releases.c.id == release.id).values(stage=stage))
            self._event(conn, release.id, actor, event, release.stage, stage, comment, details)
            self.ws.set_state(conn, "release_generation", str(self.clock()))
            self._audit(conn, actor, f"release.{event}", release.id, {"release": release.name, "from": release.stage,
                                                                     "to": stage, "comment": comment, **details})
        moved = self.get(release.id)
        for other_id, after in displaced:  # registries that keep one release per stage hear of both moves
            self._mirror("set_stage", self.get(other_id), actor, stage=after)
        self._mirror("set_stage", moved, actor, stage=stage)
        return moved

    def generation(self) -> str | None:
        """Changes whenever a release changes stage: a server polls it to switch without a restart."""
        return self.ws.get_state("release_generation")

    # --- aliases --------------------------------------------------------------------------------------------
    def set_alias(self, alias: str, ref: str, actor: Actor) -> Release:
        if not allowed(actor.role, Permission.RELEASES_PROMOTE):
            raise PolicyRefused(f"{actor.name}: a {actor.role.value} may not set aliases; an admin may", ["role"])
        if not _ALIAS.match(alias) or alias in STAGES or re.fullmatch(r"v?\d+", alias):
            raise ReleaseError(f"alias {alias!r}: lower-case letters, digits, - and _, starting with a letter; not "
                               "a stage name or a number")
        release = self.get(ref)
        with self._write() as conn:
            conn.execute(delete(release_aliases).where(release_aliases.c.alias == alias))
            conn.execute(insert(release_aliases).values(alias=alias, release_id=release.id, at=self.clock(),
                                                        actor=actor.name))
            self._event(conn, release.id, actor, "aliased", None, None, None, {"alias": alias})
            self._audit(conn, actor, "release.aliased", release.id, {"release": release.name, "alias": alias})
        self._mirror("set_alias", release, actor, alias=alias)
        return self.get(release.id)

    def remove_alias(self, alias: str, actor: Actor) -> None:
        if not allowed(actor.role, Permission.RELEASES_PROMOTE):
            raise PolicyRefused(f"{actor.name}: a {actor.role.value} may not remove aliases; an admin may", ["role"])
        with self._write() as conn:
            row = conn.execute(select(release_aliases.c.release_id).where(release_aliases.c.alias == alias)).first()
            if row is None:
                raise ReleaseError(f"no alias {alias!r}")
            conn.execute(delete(release_aliases).where(release_aliases.c.alias == alias))
            self._event(conn, row[0], actor, "unaliased", None, None, None, {"alias": alias})
            self._audit(conn, actor, "release.unaliased", row[0], {"alias": alias})
        self._mirror("remove_alias", self.get(row[0]), actor, alias=alias)

    # --- model registries -----------------------------------------------------------------------------------
    def mirror_status(self, ref: str | Release) -> dict[str, dict[str, Any]]:
        """Each registry's last word on ``ref``, by registry name: the details of its latest ``mirrored`` or
        ``mirror_failed`` event with ``event`` and ``at`` (registries no longer configured included)."""
        out: dict[str, dict[str, Any]] = {}
        for e in self.events(ref):
            if e.event in ("mirrored", "mirror_failed"):
                out[str(e.details.get("registry"))] = {"event": e.event, "at": e.at, **e.details}
        return out

    def sync(self, ref: str | None, actor: Actor, *, all_: bool = False) -> list[dict[str, Any]]:
        """Bring the model registries level with the workspace: for each release, each registry is told again what
        the workspace holds — ``publish`` (a release there already is found), ``set_stage`` to its stage,
        ``set_alias`` for each of its aliases, and ``remove_alias`` for each alias whose removal that registry
        missed — stopping at a registry's first failure. Each call is an event as usual.

        Which releases: ``ref``; every release with ``all_``; by default those whose latest event from some
        configured registry is ``mirror_failed``, told again by those registries only. A candidate's stage alias
        names the newest candidate, so when an older candidate is told its stage, the newest is told after it.
        Returns, per release (oldest first), per registry: ``ok``, what was ``done``, and the ``failed`` call with
        its ``error``."""
        if not allowed(actor.role, Permission.RELEASES_PROMOTE):
            raise PolicyRefused(f"{actor.name}: the role {actor.role.value} may not sync releases to the model "
                                "registries; an admin may", ["role"])
        if ref is not None and all_:
            raise ReleaseError("name one release or all of them (--all), not both")
        if not self.mirrors:
            return []
        names = {_mirror_name(m) for m in self.mirrors}
        targets: dict[str, set[str]] = {}
        if ref is not None:
            targets[self.get(ref).id] = set(names)
        else:
            for release in self.list():
                if all_:
                    targets[release.id] = set(names)
                    continue
                behind = {name for name, last in self.mirror_status(release).items()
                          if name in names and last["event"] == "mirror_failed"}
                if behind:
                    targets[release.id] = behind
        if not targets:
            return []
        chosen = sorted((self.get(rid) for rid in targets), key=lambda r: r.number)
        newest = self.list("candidate")[:1]
        older = {n for r in chosen if r.stage == "candidate" and newest and r.id != newest[0].id
                 for n in targets[r.id]}
        if older:
            chosen = [r for r in chosen if r.id != newest[0].id] + [newest[0]]
            targets[newest[0].id] = targets.get(newest[0].id, set()) | older
        out = []
        for release in chosen:
            try:
                manifest: dict[str, Any] | None = self.manifest(release)
                broken = None
            except ReleaseIntegrityError as exc:
                manifest, broken = None, str(exc)
            registries = []
            for mirror in self.mirrors:
                if _mirror_name(mirror) not in targets[release.id]:
                    continue
                if manifest is None:
                    registries.append({"registry": _mirror_name(mirror), "ok": False, "done": [],
                                       "failed": "publish", "error": broken})
                    continue
                registries.append(self._sync_one(mirror, release, manifest, actor))
            self._audit(None, actor, "release.synced", release.id, {
                "release": release.name, "registries": {r["registry"]: "ok" if r["ok"] else "failed"
                                                        for r in registries}})
            out.append({"release": release.id, "name": release.name, "stage": release.stage,
                        "aliases": list(release.aliases), "ok": all(r["ok"] for r in registries),
                        "registries": registries})
        return out

    def _sync_one(self, mirror: Any, release: Release, manifest: dict[str, Any], actor: Actor) -> dict[str, Any]:
        """Tell ``mirror`` everything about ``release`` again (see :meth:`sync`)."""
        name = _mirror_name(mirror)
        missed: dict[str, bool] = {}  # alias -> whether this registry's last try to remove it failed
        for e in self.events(release):
            if e.event in ("mirrored", "mirror_failed") and e.details.get("registry") == name \
                    and e.details.get("action") == "remove_alias" and e.details.get("alias"):
                missed[e.details["alias"]] = e.event == "mirror_failed"
        stale = [a for a, failed in sorted(missed.items()) if failed and a not in release.aliases]
        calls: list[tuple[str, dict[str, Any]]] = [("publish", {"manifest": manifest}),
                                                   ("set_stage", {"stage": release.stage})]
        calls += [("set_alias", {"alias": a}) for a in release.aliases]
        kept: list[str] = []
        if getattr(mirror, "removes_aliases", True):
            calls += [("remove_alias", {"alias": a}) for a in stale]
        else:  # it said so when the alias was removed; asking again would fail the same way every time
            kept = stale
        done: list[str] = []
        for method, kwargs in calls:
            label = " ".join([method, *(str(v) for k, v in kwargs.items() if k != "manifest")])
            outcome = self._tell(mirror, method, release, actor, kwargs)
            if outcome["event"] == "mirror_failed":
                return {"registry": name, "ok": False, "done": done, "failed": label, "error": outcome["error"]}
            done.append(label)
        result = {"registry": name, "ok": True, "done": done}
        if kept:
            result["kept_aliases"] = kept
        return result

    # --- comparing ------------------------------------------------------------------------------------------
    def diff(self, a: str, b: str) -> dict[str, Any]:
        """What changed from release ``a`` to ``b``: the spec (a unified diff of its text), the dataset and index
        versions, the models, the prompts, and each metric's change."""
        ra, rb = self.get(a), self.get(b)
        ma, mb = self.manifest(ra), self.manifest(rb)
        store = self.ws.artifacts
        spec_a = store.get_bytes(ma["spec"]["artifact"]).decode()
        spec_b = store.get_bytes(mb["spec"]["artifact"]).decode()
        spec_diff = list(difflib.unified_diff(spec_a.splitlines(), spec_b.splitlines(), f"{ra.name}/flightdeck.yaml",
                                              f"{rb.name}/flightdeck.yaml", lineterm=""))

        def changed(x: Any, y: Any) -> dict[str, Any] | None:
            return None if x == y else {"from": x, "to": y}

        metrics_a = (ma.get("evaluation") or {}).get("metrics") or {}
        metrics_b = (mb.get("evaluation") or {}).get("metrics") or {}
        metrics = {}
        for name in sorted(set(metrics_a) | set(metrics_b)):
            x, y = metrics_a.get(name), metrics_b.get(name)
            if isinstance(x, int | float) and isinstance(y, int | float) and not isinstance(x, bool):
                if x != y:
                    metrics[name] = {"from": x, "to": y, "change": round(y - x, 6)}
            elif x != y and not isinstance(x, dict | list) and not isinstance(y, dict | list):
                metrics[name] = {"from": x, "to": y}
        documents = None
        if ma.get("dataset_version") != mb.get("dataset_version"):
            documents = self._document_changes(ma.get("dataset_version"), mb.get("dataset_version"))
        models = {k: c for k in ("embedder", "generator")
                  if (c := changed(ma["models"].get(k), mb["models"].get(k))) is not None}
        return {"from": ra.to_dict(), "to": rb.to_dict(), "same": ra.manifest == rb.manifest,
                "spec": spec_diff, "dataset_version": changed(ma.get("dataset_version"), mb.get("dataset_version")),
                "documents": documents,
                "index_version": changed(ma["index_version"].get("id"), mb["index_version"].get("id")),
                "models": models, "prompts": changed(ma.get("prompts"), mb.get("prompts")), "metrics": metrics}

    def _document_changes(self, a: str | None, b: str | None) -> dict[str, list[str]]:
        def docs(version: str | None) -> dict[str, str]:
            if not version:
                return {}
            with self.ws.engine.connect() as conn:
                return {r[0]: r[1] for r in conn.execute(
                    select(dataset_version_documents.c.document_id, dataset_version_documents.c.chunks_artifact)
                    .where(dataset_version_documents.c.dataset_version == version))}

        da, db = docs(a), docs(b)
        return {"added": sorted(set(db) - set(da)), "removed": sorted(set(da) - set(db)),
                "changed": sorted(d for d in set(da) & set(db) if da[d] != db[d])}

    # --- moving between machines ----------------------------------------------------------------------------
    def export(self, ref: str, path: Path, *, actor: Actor | None = None) -> dict[str, Any]:
        """One ``.tar.gz`` with the release's manifest, its history and every artifact it names (spec, dataset
        manifest and records, the index version's files, evaluation artifacts); refused when it is not intact.
        The models' weights are not bundled: their identities and hashes are, and are checked where it is
        imported and served."""
        release = self.get(ref)
        self.require_intact(release)
        manifest = self.manifest(release)
        store = self.ws.artifacts
        digests = {release.manifest, manifest["spec"]["artifact"]}
        dataset = manifest.get("dataset_version")
        if dataset:
            digests.add(dataset)
            digests.update(e[5] for e in json.loads(store.get_bytes(dataset)).get("documents", []))
        iv = manifest["index_version"]
        digests.update(d for d in (iv.get("index_artifact"), iv.get("ids_artifact")) if d and store.exists(d))
        digests.update(((manifest.get("evaluation") or {}).get("artifacts") or {}).values())
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        head = {"format": "flightdeck.release-archive/1", "release": release.to_dict(),
                "events": [e.to_dict() for e in self.events(release)]}
        tmp = path.with_name(path.name + ".part")
        with tarfile.open(tmp, "w:gz") as tar:
            def add_bytes(name: str, data: bytes) -> None:
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                tar.addfile(info, io.BytesIO(data))

            add_bytes("release.json", _canonical(head))
            for digest in sorted(d for d in digests if d):
                tar.add(store.path(digest), arcname=f"artifacts/{digest}", recursive=False)
            if manifest.get("index_files"):
                folder = self.ws.store_folder(iv["store"], iv["id"])
                for name in sorted(manifest["index_files"]):
                    tar.add(folder / name, arcname=f"index/{name}", recursive=False)
        os.replace(tmp, path)
        out = {"release": release.id, "name": release.name, "path": str(path), "artifacts": len(digests),
               "index_files": len(manifest.get("index_files") or {}), "bytes": path.stat().st_size}
        if actor is not None:
            self._audit(None, actor, "release.exported", release.id, {"release": release.name, "path": str(path)})
        return out

    def import_(self, path: Path, actor: Actor) -> tuple[Release, bool]:
        """Add the release of an archive made by :meth:`export`, every hash checked before anything is written;
        it arrives as a candidate (approvals do not travel: its history is kept in the import event)."""
        path = Path(path)
        try:
            tar = tarfile.open(path, "r:gz")
        except (OSError, tarfile.TarError) as exc:
            raise ReleaseError(f"{path}: not a release archive ({exc})") from None
        with tar:
            members = {m.name: m for m in tar.getmembers()}
            for name, m in members.items():
                if not (m.isfile() and (name == "release.json" or re.fullmatch(r"artifacts/[0-9a-f]{64}", name)
                                        or (name.startswith("index/") and ".." not in Path(name).parts))):
                    raise ReleaseError(f"{path}: unexpected entry {name!r}; not an archive of `flightdeck release "
                                       "export`")
            if "release.json" not in members:
                raise ReleaseError(f"{path}: no release.json; not an archive of `flightdeck release export`")

            def read(name: str) -> bytes:
                fh = tar.extractfile(members[name])
                assert fh is not None
                return fh.read()

            head = json.loads(read("release.json"))
            rel = head.get("release") or {}
            digest = rel.get("manifest", "")
            if f"artifacts/{digest}" not in members:
                raise ReleaseError(f"{path}: the manifest artifact is missing from the archive")
            blobs: dict[str, bytes] = {}
            for name in members:
                if name.startswith("artifacts/"):
                    data = read(name)
                    if hashlib.sha256(data).hexdigest() != name.split("/", 1)[1]:
                        raise ReleaseIntegrityError(f"{path}: {name} does not match its hash; the archive was "
                                                    "changed or damaged", [name])
                    blobs[name.split("/", 1)[1]] = data
            manifest = json.loads(blobs[digest])
            release_id = "rel_" + digest[:16]
            if rel.get("id") != release_id or manifest.get("format") != MANIFEST_FORMAT:
                raise ReleaseIntegrityError(f"{path}: the release id does not match its manifest", ["id"])
            index_files: dict[str, bytes] = {}
            for name, meta in (manifest.get("index_files") or {}).items():
                member = f"index/{name}"
                if member not in members:
                    raise ReleaseIntegrityError(f"{path}: index file {name} is missing", [name])
                data = read(member)
                if hashlib.sha256(data).hexdigest() != meta["sha256"]:
                    raise ReleaseIntegrityError(f"{path}: index file {name} does not match its hash", [name])
                index_files[name] = data
        needed = {manifest["spec"]["artifact"], manifest.get("dataset_version")} - {None}
        missing = [d for d in needed if d not in blobs]
        if missing:
            raise ReleaseIntegrityError(f"{path}: artifacts {', '.join(m[:12] for m in missing)} are missing", missing)
        existing = self._row(release_id)
        if existing is not None:
            return existing, False
        for data in blobs.values():
            self.ws.artifacts.put_bytes(data)
        iv = manifest["index_version"]
        if index_files:
            folder = self.ws.store_folder(iv["store"], iv["id"])
            if not folder.exists():
                tmp = folder.with_name(folder.name + ".import")
                for name, data in index_files.items():
                    target = tmp / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
                os.replace(tmp, folder)
        dataset = manifest.get("dataset_version")
        now = self.clock()
        with self._write() as conn:
            if dataset and conn.execute(select(dataset_versions.c.id).where(dataset_versions.c.id == dataset)).first() \
                    is None:
                entries = json.loads(blobs[dataset]).get("documents", [])
                conn.execute(insert(dataset_versions).values(id=dataset, created_at=now, run_id=iv.get("run_id") or "",
                                                             manifest_artifact=dataset, document_count=len(entries)))
                if entries:
                    conn.execute(insert(dataset_version_documents), [
                        {"dataset_version": dataset, "document_id": e[0], "content_hash": e[1], "source_uri": e[3],
                         "chunks_artifact": e[5]} for e in entries])
            if iv.get("id") and conn.execute(select(index_versions.c.id).where(index_versions.c.id == iv["id"])) \
                    .first() is None:
                conn.execute(insert(index_versions).values(
                    id=iv["id"], created_at=iv.get("created_at") or now, run_id=iv.get("run_id") or "",
                    dataset_version=iv.get("dataset_version") or "", embedder=iv.get("embedder") or "",
                    dim=iv.get("dim") or 0, store=iv.get("store") or "", chunk_count=iv.get("chunk_count") or 0,
                    index_artifact=iv.get("index_artifact") or "", ids_artifact=iv.get("ids_artifact") or "",
                    collection=iv.get("collection")))
            number = (conn.execute(select(func.max(releases.c.number))).scalar() or 0) + 1
            summary = dict(rel.get("summary") or {})
            conn.execute(insert(releases).values(
                id=release_id, number=number, created_at=now, created_by=rel.get("created_by") or actor.name,
                manifest=digest, spec_hash=manifest["spec"]["sha256"], dataset_version=dataset,
                index_version=iv.get("id"), eval_run=(manifest.get("evaluation") or {}).get("run_id"),
                gates_passed=rel.get("gates_passed") if rel.get("gates_passed") is None else int(rel["gates_passed"]),
                stage="candidate", summary=summary))
            self._event(conn, release_id, actor, "imported", None, "candidate", None,
                        {"archive": str(path), "history": head.get("events", [])})
            self._audit(conn, actor, "release.imported", release_id, {"release": f"v{number}", "archive": str(path)})
        release = self.get(release_id)
        self._mirror("publish", release, actor, manifest=manifest)
        return release, True

    # --- records --------------------------------------------------------------------------------------------
    def _event(self, conn: Any, release_id: str, actor: Actor, event: str, from_stage: str | None,
               to_stage: str | None, comment: str | None, details: dict[str, Any]) -> int:
        result = conn.execute(insert(release_events).values(
            release_id=release_id, at=self.clock(), actor=actor.name, role=actor.role.value, event=event,
            from_stage=from_stage, to_stage=to_stage, comment=comment, details=details))
        return int(result.inserted_primary_key[0])

    def record_red_team(self, ref: str, actor: Actor, results: dict[str, Any]) -> ReleaseEvent:
        """Keep a red-team run's results on the release (``successful_attacks``: how many attacks succeeded)."""
        release = self.get(ref)
        with self._write() as conn:
            event_id = self._event(conn, release.id, actor, "red_team", None, None, None, results)
            self._audit(conn, actor, "release.red_team", release.id,
                        {"release": release.name, "successful_attacks": results.get("successful_attacks")})
        return next(e for e in self.events(release) if e.id == event_id)

    def artifact_paths(self, ref: str | Release) -> dict[str, Path]:
        """What a mirror uploads: the manifest, the spec and the index version's files, by name."""
        release = ref if isinstance(ref, Release) else self.get(ref)
        manifest = self.manifest(release)
        paths = {"manifest.json": self.ws.artifacts.path(release.manifest),
                 "flightdeck.yaml": self.ws.artifacts.path(manifest["spec"]["artifact"])}
        iv = manifest["index_version"]
        if manifest.get("index_files"):
            folder = self.ws.store_folder(iv["store"], iv["id"])
            paths.update({f"index/{name}": folder / name for name in sorted(manifest["index_files"])})
        return paths

    def _mirror(self, method: str, release: Release, actor: Actor, **kwargs: Any) -> None:
        """Tell each mirror (a model registry) what happened; its answer or its failure becomes an event."""
        for mirror in self.mirrors:
            self._tell(mirror, method, release, actor, kwargs)

    def _tell(self, mirror: Any, method: str, release: Release, actor: Actor, kwargs: dict[str, Any]
              ) -> dict[str, Any]:
        """One call of ``mirror``, recorded as a ``mirrored`` or ``mirror_failed`` event; returns the event's details
        (with ``event``). The details keep the call's argument (``stage``, ``alias``) so that ``sync`` can retry it."""
        name = _mirror_name(mirror)
        args = {k: v for k, v in kwargs.items() if k != "manifest"}
        try:
            if method == "publish":
                result = mirror.publish(release, kwargs["manifest"], self.artifact_paths(release))
            else:
                result = getattr(mirror, method)(release, *args.values())
            event, details = "mirrored", {"registry": name, "action": method, **args, "result": result or {}}
        except Exception as exc:  # noqa: BLE001 - a registry down never undoes what the workspace recorded
            event, details = "mirror_failed", {"registry": name, "action": method, **args,
                                               "error": f"{type(exc).__name__}: {exc}"[:1000]}
            log.warning("release %s: %s %s failed: %s", release.name, name, method, exc)
        with self.ws.engine.begin() as conn:
            self._event(conn, release.id, actor, event, None, None, None, details)
        return {"event": event, **details}

    def _write(self) -> Any:
        """A write transaction: the audit log's (the change and its entry commit together) when there is one."""
        return self.audit.transaction() if self.audit is not None else self.ws.engine.begin()

    def _audit(self, conn: Any, actor: Actor, action: str, release_id: str, details: dict[str, Any]) -> None:
        if self.audit is not None:
            self.audit.append(actor.name, action, release_id, details, conn=conn)
