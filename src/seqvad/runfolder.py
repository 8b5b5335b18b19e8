"""A run folder's guard: checked before anything is written, locked against a second writer,
an older run moved aside (never deleted).

Commands that write a run (``prepare``, ``train``, ``experiment``, ``demo``) call
:func:`claim` first, so that a typo, a read-only folder or a second concurrent command fails
with one line before any cube, checkpoint or log of an existing run changes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from seqvad.errors import ConfigError

log = logging.getLogger(__name__)

LOCK_NAME = ".seqvad.lock"
# what makes a folder hold a run (beyond cube caches, which are rebuilt or reused by content)
RUN_MARKERS = ("checkpoints", "log.csv", "log.json", "metrics.json", "scores.csv", "metrics_val.json", "model.pt")
# sections whose change makes an existing run's cubes or weights mean something else
RUN_SECTIONS = ("detector", "cubes", "model", "tasks", "schedule")


def check_writable(run_dir: Path) -> None:
    """The folder exists (made if needed) and a file can be created in it."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=run_dir, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise ConfigError(f"{run_dir}: run folder is not writable ({exc.strerror or exc})") from None


def run_markers(run_dir: Path) -> list[str]:
    """The files that show ``run_dir`` already holds a run (empty when it holds none)."""
    found = [name for name in RUN_MARKERS if (run_dir / name).exists()]
    if "checkpoints" in found and not any((run_dir / "checkpoints").rglob("*.pt")):
        found.remove("checkpoints")  # an empty checkpoint folder holds nothing to lose
    return found


def move_aside(run_dir: Path) -> Path:
    """Move the run in ``run_dir`` to a sibling ``NAME.old-TIMESTAMP`` (the lock stays).

    The cube caches are linked back (their files are only ever replaced, never written in
    place, so the old run keeps its own copy) and are reused when the config allows."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    target = run_dir.with_name(f"{run_dir.name}.old-{stamp}")
    suffix = 1
    while target.exists():
        target = run_dir.with_name(f"{run_dir.name}.old-{stamp}-{suffix}")
        suffix += 1
    target.mkdir()
    for entry in run_dir.iterdir():
        if entry.name != LOCK_NAME:
            entry.rename(target / entry.name)
    link_tree(target / "cubes", run_dir / "cubes")
    return target


def link_tree(source: Path, target: Path) -> None:
    """Hard-link every file under ``source`` into ``target`` (cube caches shared between runs)."""
    if not source.is_dir():
        return
    for path in source.rglob("*"):
        if path.is_file() and not path.name.endswith(".tmp"):
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, destination)
            except OSError:  # no hard links here: the cache is rebuilt instead
                return


def saved_config(run_dir: Path) -> dict | None:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        raise ConfigError(f"{path}: not readable YAML; move the run folder aside (--fresh)") from None


def config_changes(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The dotted keys of :data:`RUN_SECTIONS` (and ``train`` settings other than the
    resumable ones) that differ between a saved run config and the current one."""
    from seqvad.config import RESUMABLE_KEYS, diff, load_config

    a, b = load_config(dict(saved)), load_config(dict(current))
    changes = diff({k: a.get(k) for k in (*RUN_SECTIONS, "train")}, {k: b.get(k) for k in (*RUN_SECTIONS, "train")})
    # the boxes file is compared by content in the cube cache key (a validation run rewrites its path)
    ignored = {*RESUMABLE_KEYS, "detector.boxes", "detector.allow_pickle"}
    return [c for c in changes if c.split(":")[0] not in ignored and not c.startswith("detector.boxes.")]


@dataclass
class Claim:
    moved: Path | None  # where an older run was moved aside
    trained: bool  # the folder holds a trained run that continues: its cube caches must stay


@contextlib.contextmanager
def claim(run_dir: Path, config: Mapping[str, Any], command: str, fresh: bool = False,
          continue_run: bool = False) -> Iterator[Claim]:
    """Check and lock ``run_dir`` for ``command``.

    * an existing run is moved aside with ``fresh``;
    * otherwise ``continue_run`` (resume, or an experiment that resumes) needs the same
      settings as the saved run, and without it an existing run is refused.
    """
    run_dir = Path(run_dir)
    check_writable(run_dir)
    with RunLock(run_dir, command):
        moved = None
        markers = run_markers(run_dir)
        if markers and fresh:
            moved = move_aside(run_dir)
            print(f"seqvad: moved the previous run in {run_dir} to {moved}", flush=True)
        elif markers and continue_run:
            saved = saved_config(run_dir)
            changes = config_changes(saved, config) if saved is not None else []
            if changes:
                raise ConfigError(f"{run_dir} holds a run made with other settings ({'; '.join(changes[:4])}); "
                                  "use another --out, or --fresh to move that run aside")
        elif markers:
            raise ConfigError(f"{run_dir} already holds a run ({', '.join(markers)}); use another --out, "
                              f"or --fresh to move it aside{'' if command == 'prepare' else ' (or --resume)'}")
        yield Claim(moved, moved is None and any((run_dir / "checkpoints").rglob("*.pt")))


class RunFolderInUse(ConfigError):
    """Another live process holds the run folder's lock."""


class RunLock:
    """``RUN/.seqvad.lock``: the process writing the run folder. A lock left by a process that is
    gone (killed) is taken over; one held by a live process is refused."""

    def __init__(self, run_dir: Path, command: str):
        self.path = Path(run_dir) / LOCK_NAME
        self.command = command
        self.held = False

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _record(self) -> bytes:
        return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                           "started": datetime.now().isoformat(timespec="seconds")}).encode()

    def acquire(self) -> None:
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self.owner()
                if owner is not None and _alive(owner):
                    raise RunFolderInUse(
                        f"{self.path.parent} is in use by `seqvad {owner.get('command', '?')}` (process "
                        f"{owner.get('pid')}, started {owner.get('started', '?')}); wait for it to finish or "
                        "use another --out") from None
                log.warning("%s: taking over the lock of process %s, which is gone", self.path,
                            (owner or {}).get("pid", "?"))
                self.path.unlink(missing_ok=True)
                time.sleep(0.01)
                continue
            with os.fdopen(fd, "wb") as handle:
                handle.write(self._record())
            self.held = True
            return
        raise ConfigError(f"{self.path}: cannot take the run folder's lock (another process keeps taking it)")

    def owner(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None  # unreadable or half-written: treated as stale

    def release(self) -> None:
        if self.held:
            owner = self.owner()
            if owner is None or owner.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False


def _alive(owner: Mapping[str, Any]) -> bool:
    """Whether the lock's process still runs (a lock from another host is trusted as live)."""
    if owner.get("host") != socket.gethostname():
        return True
    try:
        pid = int(owner["pid"])
    except (KeyError, TypeError, ValueError):
        return False
    if pid == os.getpid():
        return False  # our own leftover (a command run in-process before)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
