"""The release a server answers with, switched without a restart (checklist 5.4, 8.1).

``flightdeck serve --release production`` (or an alias, a number, an id) answers with that release: its own spec
searched on its own index version (:meth:`flightdeck.project.Project.for_release`). A watcher thread reads the
workspace's release generation (it changes whenever a release changes stage) every ``poll_s`` seconds; when the
target now names another release, the new one is built and warmed up *beside* the one serving — models loaded,
index opened, one search run — and only then swapped in with one assignment. A request holds the project it
started with to its end, so no request fails or mixes two releases during a promotion or a rollback. A release
that cannot be served (changed artifacts, missing models) is refused and the server keeps the one it has.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from flightdeck.errors import FlightdeckError

__all__ = ["ReleaseSwitch"]

log = logging.getLogger("flightdeck.serving.releases")


class ReleaseSwitch:
    """Keeps ``current`` (a project serving the release ``target`` names) up to date with the workspace.

    ``base`` is the project of the server's spec; ``build(base, target)`` returns a warmed project for the release
    ``target`` names now (default: :meth:`Project.for_release` then a warm-up search); ``on_switch(old, new)`` is
    called after each switch (the server's metrics and logs)."""

    def __init__(self, base: Any, target: str = "production", *, poll_s: float = 1.0,
                 build: Callable[[Any, str], Any] | None = None,
                 on_switch: Callable[[Any, Any], None] | None = None) -> None:
        self.base = base
        self.target = target
        self.poll_s = poll_s
        self._build = build or _warm_release
        self.on_switch = on_switch
        self.current = self._build(base, target)  # refused at start: a server never starts on a bad release
        self._generation = base.releases.generation()
        self.switches = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def release(self) -> Any:
        return self.current.release

    def check(self) -> bool:
        """Switch now if the target names another release than the one serving; True if it switched."""
        with self._lock:
            generation = self.base.releases.generation()
            if generation == self._generation:
                return False
            try:
                wanted = self.base.releases.get(self.target)
            except FlightdeckError as exc:  # e.g. nothing in production any more: keep serving what we have
                self._generation = generation
                self.last_error = str(exc)
                log.warning("release %s: %s; still serving %s", self.target, exc, self.release.name)
                return False
            if wanted.id == self.release.id:
                self._generation = generation
                return False
            try:
                new = self._build(self.base, wanted.id)
            except FlightdeckError as exc:
                self._generation = generation  # retried at the next change, not at every poll
                self.last_error = str(exc)
                log.error("release %s (%s) cannot be served: %s; still serving %s", wanted.name, wanted.id, exc,
                          self.release.name)
                return False
            old, self.current = self.current, new  # one assignment: a request sees the old or the new, whole
            self._generation = generation
            self.switches += 1
            self.last_error = None
        log.info("now serving release %s (%s), was %s", new.release.name, new.release.id, old.release.name)
        if self.on_switch is not None:
            self.on_switch(old, new)
        return True

    def start(self) -> ReleaseSwitch:
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="flightdeck-release-switch", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_s * 4 + 1)

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the watcher must outlive any one failure; the server keeps serving
                log.exception("release watcher")
                time.sleep(self.poll_s)

    def to_dict(self) -> dict[str, Any]:
        r = self.release
        return {"id": r.id, "name": r.name, "stage": r.stage, "target": self.target,
                "index_version": r.index_version, "switches": self.switches, "last_error": self.last_error}


def _warm_release(base: Any, ref: str) -> Any:
    """The project of release ``ref``, its index opened by one search (the server's embedding model is shared when
    the release was built with the same one: one model in memory, not one per release)."""
    project = base.for_release(ref)
    project.search("warm up", k=1)
    return project
