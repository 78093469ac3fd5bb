"""Files only their owner may read: secrets, keys, credentials, logs and local state.

A file written with the default umask and chmod-ed afterwards is readable by others for a moment
(and for good, if the process dies in between). Here the file is created with mode 0600 from its
first byte (``os.open`` with ``O_CREAT | O_EXCL``), into a directory made 0700, and replaces its
target with one atomic rename, so a reader such as a server re-reading its credentials file never
sees half of it either.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIRECTORY_MODE = 0o700


def private_directory(path: Path) -> Path:
    """Create ``path`` (and missing parents) as 0700; an existing one is narrowed to 0700."""
    # mkdir's mode is masked by the umask, which can only narrow it; chmod then makes it exact.
    path.mkdir(mode=PRIVATE_DIRECTORY_MODE, parents=True, exist_ok=True)
    path.chmod(PRIVATE_DIRECTORY_MODE)
    return path


def write_private(path: Path, data: bytes | str) -> Path:
    """Atomically write ``data`` to ``path`` as a 0600 file (a missing directory is created 0700;
    an existing one is left as its owner set it, e.g. a mounted /etc/madina)."""
    if not path.parent.is_dir():
        private_directory(path.parent)
    payload = data.encode() if isinstance(data, str) else data
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(
        temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), PRIVATE_FILE_MODE
    )
    try:
        with os.fdopen(descriptor, "wb") as file:
            # The umask may have narrowed 0600 (e.g. to 0400); restore owner write before any byte.
            os.fchmod(file.fileno(), PRIVATE_FILE_MODE)
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return path


def open_private_append(path: Path) -> int:
    """A descriptor appending to ``path``, created 0600 if missing (for log and lock files)."""
    if not path.parent.is_dir():
        private_directory(path.parent)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE_MODE)


def restrict_umask() -> None:
    """Make files this process creates from now on (databases, broker segments) owner-only."""
    os.umask(os.umask(0o077) | 0o077)
