"""Every built-in versioning provider, and the fake, passes the versioning hook contract
(:mod:`flightdeck.testing.versioning_contract`).

Each runs on what its own tests run on: DVC's real Python API with a local-folder remote (test_versioning_dvc.py),
OpenLineage's file transport and its HTTP transport posting to the receiver of test_versioning_openlineage.py.
No lakeFS server can run here (test_versioning_lakefs.py), so lakefs runs with a stand-in for the two calls that
reach the server (resolving the ref to its commit, and the lakefs-spec file system listing and reading the objects
at that commit): the hook, the mirroring into the folder and what it records are the provider's own.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flightdeck.data.versioning.lakefs import LakefsConfig, LakefsVersioning
from flightdeck.registry import Category
from flightdeck.testing import FakeVersioning
from flightdeck.testing.versioning_contract import VersioningHookContract
from needs import needs_provider

pytestmark = pytest.mark.integration


class TestFakeVersioning(VersioningHookContract):
    @pytest.fixture
    def provider(self) -> FakeVersioning:
        return FakeVersioning({"snapshot": "fake-1", "files": 2})

    @pytest.fixture
    def takes_snapshots(self) -> bool:
        return True


# --- dvc (DVC's Python API, a local-folder remote) ------------------------------------------------------------
@needs_provider(Category.VERSIONING, "dvc")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # DVC's own, as in its tests
class TestDvcVersioning(VersioningHookContract):
    @pytest.fixture
    def provider(self, tmp_path: Path) -> Any:
        from flightdeck.data.versioning.dvc import DvcConfig, DvcVersioning

        # path: the files source's folder (the context's docs/); dvc add, then push to the remote
        return DvcVersioning(DvcConfig(remote=str(tmp_path / "dvc-remote")))

    @pytest.fixture
    def takes_snapshots(self) -> bool:
        return True


# --- lakefs (a stand-in for the server) -----------------------------------------------------------------------
class _LakefsStandIn:
    """What lakeFS holds at one commit, answering the lakefs-spec calls the provider makes (``find``, ``get_file``)."""

    commit = "c0ffee" + "0" * 58

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects  # full lakefs-spec path -> bytes

    def find(self, root: str, detail: bool = False) -> dict[str, dict[str, Any]]:
        assert detail
        return {path: {"checksum": hashlib.md5(data).hexdigest()} for path, data in self.objects.items()
                if path.startswith(root + "/")}

    def get_file(self, rpath: str, lpath: str) -> None:
        Path(lpath).write_bytes(self.objects[rpath])


class _OfflineLakefs(LakefsVersioning):
    def __init__(self, config: LakefsConfig, stand_in: _LakefsStandIn) -> None:
        super().__init__(config)
        self.stand_in = stand_in

    def _filesystem(self) -> Any:
        return self.stand_in

    def resolve_commit(self, fs: Any) -> str:
        return str(fs.commit)


class TestLakefsVersioning(VersioningHookContract):
    @pytest.fixture
    def provider(self) -> LakefsVersioning:
        config = LakefsConfig(uri="lakefs://docs-repo/main/raw", path="./mirror")  # relative to the spec
        at = f"docs-repo/{_LakefsStandIn.commit}"
        return _OfflineLakefs(config, _LakefsStandIn({f"{at}/raw/guide/install.md": b"# Installing\n\nRun it.\n",
                                                      f"{at}/raw/notes.txt": b"Widgets are red.\n",
                                                      f"{at}/other/ignored.txt": b"not under raw/\n"}))

    @pytest.fixture
    def takes_snapshots(self) -> bool:
        return True

    def test_the_snapshot_names_the_commit_mirrored(self, provider: LakefsVersioning, context: Any) -> None:
        info = provider.snapshot(context)
        assert info == {"repository": "docs-repo", "ref": "main", "commit_id": _LakefsStandIn.commit, "path": "raw",
                        "objects": 2}
        mirror = context.base_dir / "mirror"
        assert sorted(p.relative_to(mirror).as_posix() for p in mirror.rglob("*") if p.is_file()) == [
            "guide/install.md", "notes.txt"]


# --- openlineage (file transport; HTTP transport to a receiver on 127.0.0.1) ----------------------------------
@needs_provider(Category.VERSIONING, "openlineage")
class TestOpenLineageFileTransport(VersioningHookContract):
    @pytest.fixture
    def provider(self) -> Any:
        from flightdeck.data.versioning.openlineage import OpenLineageConfig, OpenLineageVersioning

        return OpenLineageVersioning(OpenLineageConfig(transport="file", path="./lineage"))

    @pytest.fixture
    def takes_snapshots(self) -> bool:
        return False


@needs_provider(Category.VERSIONING, "openlineage")
class TestOpenLineageHttpTransport(VersioningHookContract):
    @pytest.fixture
    def receiver(self) -> Iterator[str]:
        from http.server import ThreadingHTTPServer

        from test_versioning_openlineage import _Receiver

        _Receiver.received = []
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{server.server_address[1]}"
        server.shutdown()
        server.server_close()

    @pytest.fixture
    def provider(self, receiver: str) -> Any:
        from flightdeck.data.versioning.openlineage import OpenLineageConfig, OpenLineageVersioning

        return OpenLineageVersioning(OpenLineageConfig(transport="http", url=receiver, retries=0, timeout=5))

    @pytest.fixture
    def takes_snapshots(self) -> bool:
        return False
