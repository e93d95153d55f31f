"""The lakefs provider as far as it can be tested without a lakeFS server (none can run here).

Tested: lakeFS URI parsing and the settings (no lakefs-spec import needed), the flavor's `planned` status,
and that an unreachable server makes the run fail with a SourceError after the configured retries and
before anything is written. Not tested (needs a server): resolving a ref to its commit id and mirroring
the objects.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from flightdeck import Project
from flightdeck.data.versioning.lakefs import LakefsConfig, LakefsVersioning, parse_lakefs_uri
from flightdeck.errors import SourceError
from flightdeck.spec.status import option_status
from needs import needs

pytestmark = pytest.mark.integration


def test_lakefs_uris_are_parsed_and_bad_ones_named() -> None:
    uri = parse_lakefs_uri("lakefs://docs-repo/main/raw/manuals/")
    assert (uri.repository, uri.ref, uri.path) == ("docs-repo", "main", "raw/manuals")
    assert uri.at("c0ffee") == "docs-repo/c0ffee/raw/manuals"
    assert parse_lakefs_uri("lakefs://docs-repo/v1.2").path == ""
    assert parse_lakefs_uri("lakefs://docs-repo/main~2/a.txt").ref == "main~2"
    for bad, why in [("s3://bucket/key", "must start with lakefs://"), ("lakefs://ab/main/x", "3-63"),
                     ("lakefs://Docs/main/x", "lower-case"), ("lakefs://docs-repo", "expected"),
                     ("lakefs://docs-repo/main/../etc", "'..'")]:
        with pytest.raises(ValueError, match=why):
            parse_lakefs_uri(bad)


def test_lakefs_settings_are_validated() -> None:
    cfg = LakefsConfig(uri="lakefs://docs-repo/main/raw", host="http://lakefs:8000", access_key_id="AKIA",
                       secret_access_key="s")
    assert cfg.parsed.repository == "docs-repo"
    with pytest.raises(ValueError, match="not a lakeFS URI"):
        LakefsConfig(uri="lakefs://x/main")
    with pytest.raises(ValueError, match="extra"):
        LakefsConfig(uri="lakefs://docs-repo/main", branch="main")  # type: ignore[call-arg]


def test_lakefs_stays_planned_with_its_reason() -> None:
    status = option_status("data.versioning.lakefs")
    assert status.state == "planned" and status.detail.startswith("no lakeFS server can run here")
    assert option_status("data.versioning.pachyderm").state == "planned"


@needs("lakefs", "lakefs_spec")  # the client that tries to reach the server
def test_an_unreachable_lakefs_server_fails_after_retries_and_writes_nothing(project_dir: Path) -> None:
    from flightdeck.data.versioning.base import VersioningContext
    from flightdeck.errors import SpecError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    spec = project_dir / "flightdeck.yaml"
    spec.write_text(spec.read_text().replace("data:\n", (
        "data:\n  versioning:\n    - {provider: lakefs, uri: 'lakefs://docs-repo/main/raw', "
        f"host: 'http://127.0.0.1:{port}', access_key_id: AKIA, secret_access_key: s, path: ./docs, "
        "retries: 3, backoff: 0.05}\n"), 1))
    # the option is planned (no server to test against), so a spec cannot select it yet ...
    with pytest.raises(SpecError, match=r"'lakefs' .* is planned: no lakeFS server can run here"):
        Project.load(project_dir)
    # ... but the provider itself fails cleanly against an unreachable server
    config = LakefsConfig(uri="lakefs://docs-repo/main/raw", host=f"http://127.0.0.1:{port}", access_key_id="AKIA",
                          secret_access_key="s", path=str(project_dir / "docs"), retries=3, backoff=0.05)
    t0 = time.perf_counter()
    with pytest.raises(SourceError) as err:
        LakefsVersioning(config).snapshot(VersioningContext("p", project_dir, None, ()))  # type: ignore[arg-type]
    assert time.perf_counter() - t0 >= 0.15  # two waits between three attempts: 0.05 + 0.1
    message = str(err.value)
    assert "lakefs://docs-repo/main/raw" in message and "after 3 attempts" in message
    assert f"127.0.0.1:{port}" in message
    assert not (project_dir / ".flightdeck").exists()
    assert sorted(p.name for p in (project_dir / "docs").iterdir()) == ["guide", "notes.txt"]  # untouched


def test_lakefs_without_a_folder_to_mirror_into_says_so(tmp_path: Path) -> None:
    from flightdeck.data.versioning.base import VersioningContext

    ctx = VersioningContext("p", tmp_path, None, ())  # type: ignore[arg-type]
    with pytest.raises(SourceError, match="no `path:` set"):
        LakefsVersioning(LakefsConfig(uri="lakefs://docs-repo/main")).snapshot(ctx)


def test_missing_lakefs_spec_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from flightdeck.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "lakefs_spec", None)  # as if lakefs-spec were not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'flightdeck\[lakefs\]'"):
        LakefsVersioning(LakefsConfig(uri="lakefs://docs-repo/main"))._filesystem()
