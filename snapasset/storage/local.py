"""Images kept in a local folder, served by the web app under /media/."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath

from snapasset.errors import StorageFailure

__all__ = ["LocalStorage"]


class LocalStorage:
    def __init__(self, root: Path, url_prefix: str = "/media"):
        self.root = Path(root)
        self.url_prefix = url_prefix.rstrip("/")

    def _path(self, key: str) -> Path:
        parts = PurePosixPath(key).parts
        if not parts or any(part in ("..", "") or part.startswith("/") for part in parts):
            raise StorageFailure(f"refusing an unsafe object key: {key!r}", retryable=False)
        return self.root.joinpath(*parts)

    def put(self, key: str, data: bytes, content_type: str) -> str:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # write aside, then rename: a reader never sees half a file
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            raise StorageFailure(f"could not write {key}: {exc.strerror}") from exc
        return f"{self.url_prefix}/{key}"

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except OSError as exc:
            raise StorageFailure(f"could not read {key}: {exc.strerror}", retryable=False) from exc

    def delete(self, keys: list[str]) -> None:
        parents = set()
        for key in keys:
            path = self._path(key)
            path.unlink(missing_ok=True)
            parents.add(path.parent)
        # drop the folders left empty, deepest first (references/ before the generation's own)
        for parent in sorted(parents, key=lambda path: len(path.parts), reverse=True):
            try:
                parent.rmdir()
            except OSError:
                pass

    def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK):
            raise StorageFailure(f"media folder {self.root} is not writable")
