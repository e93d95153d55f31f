"""A content-addressed artifact store: files named by the SHA-256 of their bytes, written atomically."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

__all__ = ["ArtifactStore"]

_CHUNK = 1 << 20


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


class ArtifactStore:
    """``<root>/sha256/ab/abcdef…``; an artifact is immutable once written."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        return self.root / "sha256" / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def _commit(self, tmp: Path, digest: str) -> str:
        target = self.path(digest)
        if target.exists():
            tmp.unlink(missing_ok=True)
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        # fsync before the rename so that a crash never leaves a named but truncated artifact.
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        return digest

    def temp_path(self) -> Path:
        """A fresh path inside the store's temp folder, for writers that need a file name."""
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir)
        os.close(fd)
        return Path(name)

    def put_bytes(self, data: bytes) -> str:
        """Store ``data``; returns its digest."""
        digest = hashlib.sha256(data).hexdigest()
        if self.exists(digest):
            return digest
        tmp = self.temp_path()
        tmp.write_bytes(data)
        return self._commit(tmp, digest)

    def put_file(self, path: Path) -> str:
        """Move the file at ``path`` into the store (it must be on the same filesystem)."""
        return self._commit(Path(path), _hash_file(Path(path)))

    def get_bytes(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()
