"""Write report files atomically (a temporary file, then a rename) and as one set (a lock)."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from robustness_checks.errors import RobustnessError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def report_lock(folder: str | Path) -> Iterator[None]:
    """An exclusive lock on `folder` while a run writes its set of reports, so two concurrent
    runs writing the same paths never leave files from different runs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".robustness-reports.lock", "a") as handle:
        try:
            import fcntl
        except ImportError:  # not POSIX: atomic renames only
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class ReportWriteError(RobustnessError):
    """A report path that cannot be written (a folder, a FIFO, a device, no permission)."""


def kind_of(path: Path) -> str | None:
    """'a folder', 'a FIFO', 'a device', ... for what is not a regular file; None for a file."""
    mode = path.stat().st_mode
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def target_of(path: str | Path) -> Path:
    """The file a write to `path` changes: a symlink's target (followed to the end), else path;
    a ReportWriteError when that is not a regular file."""
    path = Path(path)
    target = Path(os.path.realpath(path))
    if target.exists():
        kind = kind_of(target)
        if kind is not None:
            via = f" (the target of the link {path})" if target != path.absolute() else ""
            raise ReportWriteError(
                f"{target}{via} is {kind}; reports are written only to regular files: give "
                "another path"
            )
    return target


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` to `path` so readers see the old file or the whole new one, never a part.

    A symlink is followed, so its target gets the new content and the link stays; a path that
    is a folder, FIFO, device or socket is refused (ReportWriteError) instead of replaced."""
    target = target_of(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        # mkstemp makes the file 0600; reports get the permissions the umask gives new files,
        # so CI artifact uploaders running as another user can read them.
        os.chmod(temporary, 0o666 & ~_umask())
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return Path(path)


def writable_problem(path: str | Path, *, folder: bool = False) -> str | None:
    """Why `path` (a file, or with `folder` a folder to write files in) cannot be written, or
    None: checked before a run, by creating and removing a file where the write will go."""
    path = Path(path)
    try:
        target = Path(os.path.realpath(path))
        if target.exists():
            kind = kind_of(target)
            if folder and kind != "a folder":
                return f"{target} is {kind or 'a regular file'}, not a folder"
            if not folder and kind is not None:
                return f"{target} is {kind}; reports are written only to regular files"
        place = target if folder else target.parent
        existing = place
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            return f"{existing} is a file, so {place} cannot be a folder"
        probe_in = place if place.exists() else existing
        handle, probe = tempfile.mkstemp(prefix=".robustness-probe.", dir=probe_in)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        return f"it cannot be written: {error.strerror or error} ({error.filename or path})"
    return None
