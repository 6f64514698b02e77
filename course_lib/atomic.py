"""Files that are never half written: a temporary file in the same folder, flushed and fsynced,
then renamed over the target (`os.replace` is atomic), and the folder fsynced.

Killed at any moment (SIGKILL, Ctrl-C, a full disk), a write leaves either the old file or the new
one, never a truncated mix. Checkpoints (course_lib.checkpoint), the frozen corpus and tokenizer
files (course_lib.corpus, course_lib.tokenizer) are all written this way.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_TMP = re.compile(r"^\..+\.tmp-(\d+)-[^/]*$")


def _remove_stale_temporaries(folder: Path) -> None:
    """Delete `.NAME.tmp-PID-...` files whose process is gone (left by a killed save)."""
    if os.name != "posix":
        return
    for p in folder.glob(".*.tmp-*"):
        m = _TMP.match(p.name)
        if not m or int(m.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                p.unlink()
        except OSError:  # alive but not ours (EPERM): leave it
            pass


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _file_mode(path: Path) -> int:
    """The target's permissions if it exists, else the usual 0o666 minus the umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def atomic_write(
    path: str | os.PathLike, write: Callable[[BinaryIO], None], verify: Callable[[Path], None] | None = None
) -> None:
    """Call `write(f)` on a binary temporary file next to `path`, then put it in place.

    The temporary file is `.NAME.tmp-PID-XXXX`; after `write` it is flushed, fsynced, given the
    target's permissions and, if given, passed to `verify(tmp)` (which raises to abort); then it is
    renamed over `path` and the folder is fsynced. On any failure (an exception, Ctrl-C) the
    temporary file is removed and `path` is untouched."""
    path = Path(path)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(folder)
    mode = _file_mode(path)
    # named before it exists, so that an interrupt at any point after the open still removes it;
    # the name holds our PID, so no other process can have made a file of that name
    tmp: Path | None = folder / f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(6)}"
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        fd = os.open(tmp, flags, 0o600)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if verify is not None:
            verify(tmp)
        os.replace(tmp, path)
        tmp = None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
    _fsync_folder(folder)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` as UTF-8 (line endings as given) to `path`, atomically."""
    data = text.encode("utf-8")
    atomic_write(path, lambda f: f.write(data))
