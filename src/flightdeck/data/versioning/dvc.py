"""DVC: track the raw-data folder with DVC before each ingest and record its hash in the dataset version.

Uses DVC's Python API (``dvc.repo.Repo``): the folder is ``dvc add``-ed (DVC hashes it, caches the files
and writes ``<folder>.dvc``), optionally pushed to a remote, and the ``.dvc`` file's ``md5`` (the hash of
the folder's ``.dir`` listing), size and file count go into the manifest as ``"dvc": {...}``. Anyone can
then ``dvc pull`` exactly the raw data a dataset version was built from.

The DVC repository is the one that already contains the spec's folder, or a new one created there: inside
a git work tree it uses git (``subdir`` when the folder is not the work tree's root), otherwise
``no_scm``.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flightdeck.core import NullReporter, Reporter, RetryPolicy, RunHook
from flightdeck.data.versioning.base import SnapshotHook, VersioningContext
from flightdeck.errors import SourceError
from flightdeck.registry.lookup import optional_import

__all__ = ["DvcConfig", "DvcVersioning", "REMOTE_NAME"]

REMOTE_NAME = "flightdeck"  # the DVC remote this provider configures (other remotes are left alone)
_PUSH_BACKOFF_S = 0.5  # before the second push attempt, doubled after each


class DvcConfig(BaseModel):
    """Settings of ``{provider: dvc, ...}`` under ``data.versioning``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    path: str | None = Field(None, description="the raw-data folder, relative to the spec "
                                               "(default: the folder of the first files source)")
    remote: str | None = Field(None, description="DVC remote: a URL (s3://, gs://, ssh://...) or a folder "
                                                 "(relative to the spec)")
    push: bool = Field(True, description="push the data to `remote` after adding it")
    repo: str | None = Field(None, description="DVC repository root (default: an existing DVC repository "
                                               "containing the spec's folder, else the spec's folder)")
    retries: int = Field(3, ge=1, le=10, description="attempts at pushing before the run fails")


@contextlib.contextmanager
def _quiet_dvc() -> Iterator[None]:
    """Keep stdout clean for `--json`: DVC logs INFO messages to the stdout it saw at import time."""
    loggers = [logging.getLogger(name) for name in ("dvc", "dvc_objects", "dvc_data")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(lg.level, logging.WARNING))  # warnings and errors still go to stderr
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _git_root(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


class DvcVersioning:
    """Snapshots the raw-data folder with DVC before each ingest (see the module docstring)."""

    name = "dvc"

    def __init__(self, config: DvcConfig | None = None) -> None:
        self.config = config or DvcConfig()

    def hook(self, context: VersioningContext) -> RunHook:
        return SnapshotHook(self.name, lambda reporter: self.snapshot(context, reporter), context.snapshots)

    def _data_path(self, context: VersioningContext) -> Path:
        path = context.resolve(self.config.path) if self.config.path else context.default_data_path()
        if path is None:
            raise SourceError("versioning 'dvc': no `path:` set and no files source to take it from; "
                              "set {provider: dvc, path: ./docs}")
        if not path.is_dir():
            raise SourceError(f"versioning 'dvc': {path} is not a folder; `path:` names the raw-data folder")
        return path

    def _remote_url(self, context: VersioningContext) -> str | None:
        remote = self.config.remote
        if remote is None or "://" in remote:
            return remote
        return str(context.resolve(remote))

    def _open_repo(self, context: VersioningContext, data: Path) -> Any:
        from dvc.exceptions import NotDvcRepoError
        from dvc.repo import Repo

        if self.config.repo:
            root = context.resolve(self.config.repo)
        else:
            try:
                root = Path(Repo.find_root(str(context.base_dir)))
            except NotDvcRepoError:
                root = context.base_dir
        if not data.is_relative_to(root):
            raise SourceError(f"versioning 'dvc': {data} is outside the DVC repository {root}; "
                              "set `repo:` to a folder that contains it")
        if (root / ".dvc").is_dir():
            return Repo(str(root))
        git = _git_root(root)
        if git is None:
            return Repo.init(str(root), no_scm=True)
        return Repo.init(str(root), subdir=git != root)

    def snapshot(self, context: VersioningContext, reporter: Reporter | None = None) -> dict[str, Any]:
        """``dvc add`` the folder (and push it); returns what the dataset version records."""
        reporter = reporter or NullReporter()
        DvcException = optional_import("dvc.exceptions", "dvc", "versioning 'dvc'").DvcException
        data = self._data_path(context)

        with _quiet_dvc():
            try:
                repo = self._open_repo(context, data)
            except DvcException as exc:
                raise SourceError(f"versioning 'dvc': cannot open or create a DVC repository for {data}: "
                                  f"{exc}") from exc
            try:
                return self._add_and_push(repo, data, context, reporter)
            finally:
                repo.close()

    def _add_and_push(self, repo: Any, data: Path, context: VersioningContext, reporter: Reporter) -> dict[str, Any]:
        from dvc.exceptions import DvcException

        root = Path(repo.root_dir)
        try:
            stages = repo.add([str(data)])
        except DvcException as exc:
            hint = " (if git tracks the folder: `git rm -r --cached` it first)" if "SCM" in str(exc) else ""
            raise SourceError(f"versioning 'dvc': `dvc add {data}` failed: {exc}{hint}") from exc
        stage = stages[0]
        out = stage.outs[0]
        info: dict[str, Any] = {"path": data.relative_to(root).as_posix(), "dvc_file":
                                Path(stage.path).relative_to(root).as_posix(), "md5": out.hash_info.value,
                                "size": out.meta.size, "nfiles": out.meta.nfiles}
        url = self._remote_url(context)
        if url is None:
            return info
        info["remote"] = url
        with repo.config.edit() as conf:
            if conf["remote"].get(REMOTE_NAME, {}).get("url") != url:
                conf["remote"][REMOTE_NAME] = {"url": url}
        if not self.config.push:
            return info
        repo.config.load()  # the edit above is not seen by the open repo until reloaded

        def push() -> dict[str, Any]:
            pushed = repo.push(targets=[stage.path], remote=REMOTE_NAME)
            reporter.event("dvc_pushed", remote=url, objects=pushed)
            return info

        try:
            # DvcException, OSError, the remote's client errors: all retried, then the run fails
            return RetryPolicy(self.config.retries, _PUSH_BACKOFF_S).run(push, transient=(Exception,))
        except Exception as last:
            raise SourceError(f"versioning 'dvc': push to remote {url} failed after {self.config.retries} "
                              f"attempts: {last}") from last
