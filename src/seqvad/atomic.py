"""Atomic file writes: readers see the old file or the new one, never half of one.

Every file seqvad writes that another run may read (checkpoints, logs, manifests, metrics)
goes through here: write a temporary file in the same folder, then ``os.replace`` it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary file beside ``path`` for a writer that needs a path (``np.savez``, a memory
    map); it replaces ``path`` when the block ends without error and is removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp makes the file private (0600); a result file gets the mode any new file gets here
    os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it: put it straight back (once, at
    os.umask(mask)      # import, since the umask is shared by every thread of the process)
    return mask


_UMASK = _read_umask()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with replacing(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_json(path: str | os.PathLike, data: Any, indent: int = 2) -> None:
    """JSON with numpy scalars and paths converted."""
    write_bytes(path, (json.dumps(data, indent=indent, default=_json_default) + "\n").encode())


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
