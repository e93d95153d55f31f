"""lakeFS: before each ingest, resolve ``lakefs://repo/ref/path`` to its commit, mirror that commit's objects
into the raw-data folder, and record the commit id in the dataset version.

Reads go through lakefs-spec (the fsspec file system of lakeFS) at the *commit* the ref resolved to, so a
branch moving during the copy cannot mix two states; the manifest gets
``"lakefs": {"repository", "ref", "commit_id", "path", "objects"}``. The folder is a mirror: files that
are not under the path at that commit are deleted from it, so point ``path`` at a folder of its own.

Status: no lakeFS server can run in this project's test environment, so only URI parsing, the settings and
the unreachable-server error are tested; see ``PLANNED_REASONS["data.versioning.lakefs"]``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flightdeck.core import NullReporter, Reporter, RetryPolicy, RunHook
from flightdeck.data.versioning.base import SnapshotHook, VersioningContext
from flightdeck.errors import SourceError
from flightdeck.registry.lookup import optional_import

__all__ = ["LakefsConfig", "LakefsVersioning", "LakefsUri", "parse_lakefs_uri"]

# lakeFS repository ids: 3-63 characters, lower-case letters, digits and dashes, not starting with a dash.
_URI = re.compile(r"^lakefs://(?P<repository>[a-z0-9][a-z0-9-]{2,62})/(?P<ref>[^/\s]+)(?:/(?P<path>.*))?$")


class LakefsUri(BaseModel):
    """The parts of ``lakefs://<repository>/<ref>/<path>``."""

    model_config = ConfigDict(frozen=True)
    repository: str
    ref: str
    path: str = ""

    def at(self, commit: str) -> str:
        """The lakefs-spec path of this URI's path at ``commit``."""
        return f"{self.repository}/{commit}/{self.path}".rstrip("/")


def parse_lakefs_uri(uri: str) -> LakefsUri:
    """Split a lakeFS URI; raises ValueError naming what is wrong."""
    m = _URI.match(uri.strip())
    if m is None:
        if not uri.startswith("lakefs://"):
            raise ValueError(f"{uri!r} is not a lakeFS URI: it must start with lakefs://")
        raise ValueError(f"{uri!r} is not a lakeFS URI: expected lakefs://<repository>/<ref>/<path>, where the "
                         "repository id is 3-63 lower-case letters, digits or dashes")
    path = (m["path"] or "").strip("/")
    if ".." in path.split("/"):
        raise ValueError(f"{uri!r}: '..' is not allowed in the path")
    return LakefsUri(repository=m["repository"], ref=m["ref"], path=path)


class LakefsConfig(BaseModel):
    """Settings of ``{provider: lakefs, ...}`` under ``data.versioning``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    uri: str = Field(..., description="lakefs://<repository>/<ref>/<path> (ref: a branch, tag or commit)")
    host: str | None = Field(None, description="lakeFS server URL (default: lakectl's config or "
                                               "LAKECTL_SERVER_ENDPOINT_URL)")
    access_key_id: str | None = Field(None, description="use ${ENV}")
    secret_access_key: str | None = Field(None, description="use ${ENV}")
    path: str | None = Field(None, description="local folder mirroring the objects, relative to the spec "
                                               "(default: the folder of the first files source)")
    retries: int = Field(3, ge=1, le=10, description="attempts before the run fails when lakeFS is down")
    backoff: float = Field(0.5, ge=0, description="seconds before the second attempt, doubled after each")

    @field_validator("uri")
    @classmethod
    def _valid_uri(cls, value: str) -> str:
        parse_lakefs_uri(value)
        return value

    @property
    def parsed(self) -> LakefsUri:
        return parse_lakefs_uri(self.uri)


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


class LakefsVersioning:
    """Mirrors a lakeFS ref into the raw-data folder before each ingest (see the module docstring)."""

    name = "lakefs"

    def __init__(self, config: LakefsConfig) -> None:
        self.config = config

    def hook(self, context: VersioningContext) -> RunHook:
        return SnapshotHook(self.name, lambda reporter: self.snapshot(context, reporter), context.snapshots)

    def _filesystem(self) -> Any:
        LakeFSFileSystem = optional_import("lakefs_spec", "lakefs", "versioning 'lakefs'").LakeFSFileSystem
        c = self.config
        if c.host or c.access_key_id or c.secret_access_key:
            return LakeFSFileSystem(host=c.host, username=c.access_key_id, password=c.secret_access_key)
        return LakeFSFileSystem()  # lakectl config file / LAKECTL_* environment variables

    def _with_retries(self, what: str, call: Any) -> Any:
        facts = (FileNotFoundError, PermissionError)  # a wrong ref or key: retrying cannot help
        try:
            return RetryPolicy(self.config.retries, self.config.backoff).run(
                call, transient=lambda exc: not isinstance(exc, facts))
        except facts as exc:
            raise SourceError(f"versioning 'lakefs': {what}: {exc}") from exc
        except Exception as last:  # connection refused, timeouts, 5xx: the server may come back
            host = self.config.host or "the configured lakeFS server"
            raise SourceError(f"versioning 'lakefs': {what} failed after {self.config.retries} attempts; is "
                              f"{host} reachable? ({type(last).__name__}: {last})") from last

    def resolve_commit(self, fs: Any) -> str:
        """The commit id that the URI's ref points at now."""
        import lakefs

        uri = self.config.parsed
        return self._with_retries(f"resolving {self.config.uri}",
                                  lambda: lakefs.Reference(uri.repository, uri.ref, client=fs.client).get_commit().id)

    def snapshot(self, context: VersioningContext, reporter: Reporter | None = None) -> dict[str, Any]:
        """Mirror the ref's objects at its current commit into the folder; returns what the version records."""
        reporter = reporter or NullReporter()
        dest = context.resolve(self.config.path) if self.config.path else context.default_data_path()
        if dest is None:
            raise SourceError("versioning 'lakefs': no `path:` set and no files source to take it from")
        uri = self.config.parsed
        fs = self._filesystem()
        commit = self.resolve_commit(fs)
        root = uri.at(commit)
        listing = self._with_retries(f"listing {self.config.uri} at {commit[:12]}",
                                     lambda: fs.find(root, detail=True))
        dest.mkdir(parents=True, exist_ok=True)
        keep: set[Path] = set()
        fetched = 0
        for rpath, info in sorted(listing.items()):
            rel = rpath[len(root):].lstrip("/") if rpath.startswith(root) else Path(rpath).name
            local = (dest / rel).resolve()
            if not local.is_relative_to(dest.resolve()):
                raise SourceError(f"versioning 'lakefs': object {rpath!r} would be written outside {dest}")
            keep.add(local)
            checksum = info.get("checksum")
            if local.is_file() and checksum and _md5(local) == checksum:
                continue
            local.parent.mkdir(parents=True, exist_ok=True)
            self._with_retries(f"reading {rpath}", lambda r=rpath, p=local: fs.get_file(r, str(p)))
            fetched += 1
        removed = 0
        for p in sorted(dest.rglob("*")):
            if p.is_file() and p.resolve() not in keep:
                p.unlink()
                removed += 1
        reporter.event("lakefs_synced", commit_id=commit, fetched=fetched, removed=removed)
        return {"repository": uri.repository, "ref": uri.ref, "commit_id": commit, "path": uri.path,
                "objects": len(keep)}
