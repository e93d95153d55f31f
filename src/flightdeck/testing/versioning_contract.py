"""The contract every versioning provider passes: a test class that each provider's test module inherits.

Usage (in a provider's test module)::

    from flightdeck.testing.versioning_contract import VersioningHookContract

    class TestDvcVersioning(VersioningHookContract):
        @pytest.fixture
        def provider(self, tmp_path):
            return DvcVersioning(DvcConfig(remote=str(tmp_path / "remote")))

        @pytest.fixture
        def takes_snapshots(self):
            return True                   # False for an observer (a lineage emitter)

The suite builds a :class:`~flightdeck.data.versioning.base.VersioningContext` as the pipeline's assembly does
(a workspace, the spec's folder, one files source over a small ``docs`` folder; a subclass may override the
``context`` fixture), asks the provider for its hook and drives it through a real
:class:`~flightdeck.pipeline.runner.Runner` over two fake steps, ``ingest`` and ``embed``, that take what the
hooks recorded as the real ingest step does. It checks what the pipeline relies on
(:class:`flightdeck.data.versioning.base.VersioningProvider`): ``hook(context)`` gives a
:class:`~flightdeck.core.RunHook`, a :class:`~flightdeck.data.versioning.base.SnapshotHook` exactly when the
provider takes snapshots (``observers_first`` orders hooks by that); a run succeeds with no hook failure or
warning; a snapshot provider records exactly one snapshot, a JSON object under its ``name``, when the ingest step
runs and nothing for the other steps, and an observer records none; skipped steps snapshot nothing; a failing
step fails the run with its own error while the hook still reports without failing. Needs pytest.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flightdeck.core import RunHook, StepResult
from flightdeck.data.manifest import SourceBinding
from flightdeck.data.versioning.base import (
    INGEST_STEP,
    SnapshotHook,
    VersioningContext,
    VersioningProvider,
    observers_first,
)
from flightdeck.pipeline.runner import Runner, StepFailedError
from flightdeck.testing.fakes import FakeSource, RecordingReporter
from flightdeck.workspace import Workspace

__all__ = ["VersioningHookContract", "ContractStep", "CONTRACT_DOCS"]

#: The raw data of the contract's files source (relative path -> text), written under ``<spec folder>/docs``.
CONTRACT_DOCS = {
    "guide/install.md": "# Installing Widgets\n\nRun the installer.\n",
    "notes.txt": "Widget colours: red, blue and green.\n",
}


class ContractStep:
    """A fake pipeline step: takes what the hooks recorded before it ran, as the real ingest step does; it may
    fail (``error``) after that."""

    def __init__(self, name: str, context: VersioningContext, error: BaseException | None = None) -> None:
        self.name = name
        self.context = context
        self.error = error
        self.taken: list[dict[str, dict[str, Any]]] = []  # one entry per time the step ran

    def plan(self) -> tuple[str, str]:
        return f"{self.name}-input", f"{self.name}-config"  # the same each time: a second run skips the step

    def run(self, run_id: str, reporter: Any) -> StepResult:
        self.taken.append(self.context.snapshots.take())
        if self.error is not None:
            raise self.error
        return StepResult(f"{self.name}-output", {"items": 1})


class VersioningHookContract:
    """Inherit and provide ``provider`` (a fresh provider) and ``takes_snapshots``: True for a provider whose hook
    snapshots the raw data before ingest (dvc, lakefs), False for an observer (openlineage)."""

    @pytest.fixture
    def provider(self) -> VersioningProvider:  # pragma: no cover - overridden
        raise NotImplementedError("a versioning provider's test class provides provider")

    @pytest.fixture
    def takes_snapshots(self) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError("a versioning provider's test class provides takes_snapshots")

    @pytest.fixture
    def context(self, tmp_path: Path) -> Iterator[VersioningContext]:
        root = tmp_path / "project"
        docs = root / "docs"
        for rel, text in CONTRACT_DOCS.items():
            (docs / rel).parent.mkdir(parents=True, exist_ok=True)
            (docs / rel).write_text(text, encoding="utf-8")
        workspace = Workspace(root / ".flightdeck")
        binding = SourceBinding("docs", docs.as_uri(), FakeSource(CONTRACT_DOCS))
        try:
            yield VersioningContext("contract-project", root, workspace, (binding,))
        finally:
            workspace.close()

    @pytest.fixture
    def hook(self, provider: VersioningProvider, context: VersioningContext) -> RunHook:
        return provider.hook(context)

    @staticmethod
    def _steps(context: VersioningContext, embed_error: BaseException | None = None) -> list[ContractStep]:
        return [ContractStep(INGEST_STEP, context), ContractStep("embed", context, embed_error)]

    @staticmethod
    def _runner(context: VersioningContext, hook: RunHook, reporter: RecordingReporter) -> Runner:
        return Runner(context.workspace, reporter, hooks=observers_first([hook]))  # as the project runs them

    def test_satisfies_the_protocol_and_gives_a_run_hook(self, provider: VersioningProvider, hook: RunHook) -> None:
        assert isinstance(provider, VersioningProvider)
        assert isinstance(hook, RunHook), type(hook)

    def test_the_hook_is_a_snapshot_hook_exactly_when_it_takes_snapshots(self, hook: RunHook,
                                                                          takes_snapshots: bool) -> None:
        assert isinstance(hook, SnapshotHook) == takes_snapshots, type(hook)
        if takes_snapshots:
            assert observers_first([hook, RunHook()])[-1] is hook  # an observer reports a START it could fail

    def test_a_run_succeeds_without_hook_failures(self, context: VersioningContext, hook: RunHook) -> None:
        reporter = RecordingReporter()
        steps = self._steps(context)
        summary = self._runner(context, hook, reporter).run(steps, "contract-spec")
        assert summary.status == "succeeded", summary.error
        assert [(s.step, s.status) for s in summary.steps] == [(INGEST_STEP, "succeeded"), ("embed", "succeeded")]
        assert reporter.named("hook_failed") == []
        assert summary.warnings == []

    def test_a_snapshot_is_recorded_once_when_ingest_runs_and_never_otherwise(
            self, provider: VersioningProvider, context: VersioningContext, hook: RunHook,
            takes_snapshots: bool) -> None:
        ingest, embed = steps = self._steps(context)
        self._runner(context, hook, RecordingReporter()).run(steps, "contract-spec")
        assert embed.taken == [{}], "nothing is recorded for a step other than ingest"
        [taken] = ingest.taken
        if not takes_snapshots:
            assert taken == {}, "an observer records no snapshot"
            return
        name = getattr(provider, "name", None)
        assert isinstance(name, str) and name, "a snapshot provider names itself (`name`): the manifest's key"
        assert list(taken) == [name], taken
        info = taken[name]
        assert isinstance(info, dict) and info, info
        assert json.loads(json.dumps(info)) == info, "the snapshot goes into the version's JSON manifest as is"
        assert context.snapshots.take() == {}, "the snapshot belongs to that one ingest"

    def test_skipped_steps_snapshot_nothing(self, context: VersioningContext, hook: RunHook) -> None:
        self._runner(context, hook, RecordingReporter()).run(self._steps(context), "contract-spec")
        again = self._steps(context)
        reporter = RecordingReporter()
        summary = self._runner(context, hook, reporter).run(again, "contract-spec")
        assert [s.status for s in summary.steps] == ["skipped", "skipped"]
        assert [step.taken for step in again] == [[], []] and context.snapshots.take() == {}
        assert reporter.named("hook_failed") == [] and summary.warnings == []

    def test_a_failing_step_fails_the_run_with_its_own_error(self, context: VersioningContext,
                                                              hook: RunHook) -> None:
        reporter = RecordingReporter()
        steps = self._steps(context, StepFailedError("embedding model on fire"))
        with pytest.raises(StepFailedError, match="embedding model on fire") as err:
            self._runner(context, hook, reporter).run(steps, "contract-spec")
        summary = err.value.summary
        assert summary is not None and summary.status == "failed"
        assert [(s.step, s.status) for s in summary.steps] == [(INGEST_STEP, "succeeded"), ("embed", "failed")]
        assert reporter.named("hook_failed") == [] and summary.warnings == []
