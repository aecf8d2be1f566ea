"""Writing a file the user named (``--out``): whole or not at all, and only a regular file.

Every such file is written to a temporary file beside it and renamed over it, so a failed
write leaves the previous file as it was. A rename replaces whatever the name held: a
symbolic link would become a plain file (its target untouched), ``/dev/full`` or a named pipe
a regular file in ``/dev`` or in place of the pipe. So a name that exists must be a regular
file; anything else is refused with one line naming it, and never replaced.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from store.errors import ValidationError

_KINDS = ((stat.S_ISLNK, "symbolic link"), (stat.S_ISDIR, "folder"),
          (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
          (stat.S_ISFIFO, "named pipe"), (stat.S_ISSOCK, "socket"))


#: For an export that goes into a folder (``mmlr export metafor --out DIR``).
FOLDER_HINT = "--out takes a folder that mmlr can create or write to"


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "special file")


#: What ``Path.is_dir`` takes for "not a folder" (nothing there, a file on the way, a loop of
#: links); it raises every other error.
_ABSENT = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP})


def is_folder(path: Path, *, what: str, hint: str, target: Path | None = None) -> bool:
    """Whether ``path`` is a folder (following links, as ``Path.is_dir``), or one line naming
    ``target`` (else ``path``) when the system cannot even look it up: a name longer than the
    file system allows, a folder on the way that may not be searched. ``Path.is_dir`` raised
    those, and a 300-character ``--out`` was an internal error."""
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError as exc:
        if exc.errno in _ABSENT:
            return False
        raise ValidationError(f"cannot write {what} to {target or path}: "
                              f"{exc.strerror or exc}", hint=hint) from None


def check_target(path: Path, *, what: str, hint: str) -> None:
    """Refuse ``path`` when it exists and is not a regular file, or when the folder it would
    go in cannot be one (a file where a folder is needed); nothing is created."""
    try:
        mode = os.lstat(path).st_mode  # lstat: a symbolic link is judged as itself
    except (FileNotFoundError, NotADirectoryError):  # the folders are judged below
        mode = None
    except OSError as exc:
        raise ValidationError(f"cannot write {what} to {path}: {exc.strerror}",
                              hint=hint) from None
    if mode is not None and not stat.S_ISREG(mode):
        raise ValidationError(
            f"cannot write {what} to {path}: it is a {_kind(mode)}, not a regular file",
            hint=hint)
    _check_folders(path.parent, what=what, target=path, hint=hint)


def _check_folders(folder: Path, *, what: str, target: Path, hint: str) -> None:
    # The nearest existing one of ``folder`` and its parents must be a folder (mkdir would
    # say "File exists" or "Not a directory", which does not say which part is wrong).
    for part in (folder, *folder.parents):
        if is_folder(part, what=what, hint=hint, target=target):
            return
        if os.path.lexists(part):
            raise ValidationError(f"cannot write {what} to {target}: {part} is not a folder",
                                  hint=hint)


def check_folder(folder: Path, *, what: str, hint: str, target: Path | None = None) -> None:
    """Raise the line :func:`ensure_folder` would for a ``folder`` that cannot be made (a
    file in its place or on its path), without making it: an export that may still refuse
    for want of something to write checks first and creates the folder only to write."""
    named = target or folder
    if os.path.lexists(folder) and not is_folder(folder, what=what, hint=hint, target=named):
        raise ValidationError(f"cannot write {what} to {named}: {folder} is not a folder",
                              hint=hint)
    _check_folders(folder, what=what, target=named, hint=hint)


def ensure_folder(folder: Path, *, what: str, hint: str, target: Path | None = None) -> None:
    """Create ``folder`` (and its parents) or raise one line saying why it cannot be; the
    line names ``target`` (the file that was to go there), else the folder."""
    named = target or folder
    check_folder(folder, what=what, hint=hint, target=target)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValidationError(f"cannot write {what} to {named}: {exc.strerror}",
                              hint=hint) from None


@contextmanager
def open_out(path: Path, *, what: str, hint: str) -> Iterator[IO[str]]:
    """A text handle whose content replaces ``path`` when the block ends without an error
    (:func:`check_target` first); the file is left as it was otherwise."""
    check_target(path, what=what, hint=hint)
    ensure_folder(path.parent, what=what, hint=hint, target=path)
    # A new name each time, created exclusively: a stale or planted ".name.tmp" (a link
    # to elsewhere) is never written through. Mode 0o666 lets the umask decide, as for
    # any file the user creates.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise ValidationError(f"cannot write {what} to {path}: {exc.strerror}",
                              hint=hint) from None
    try:
        # A file replaced keeps its permissions: an export someone made private (0600)
        # became world-readable under the umask's 0644. Set before anything is written.
        if path.is_file():
            os.fchmod(fd, stat.S_IMODE(path.stat().st_mode))
    except OSError:
        pass  # not ours to change (another owner's file): the umask's mode, as for a new one
    try:
        with open(fd, "w", encoding="utf-8", newline="") as fh:
            yield fh
        check_target(path, what=what, hint=hint)  # it may have become a link meanwhile
        os.replace(tmp, path)
    except OSError as exc:  # a full disk, a quota: the same one line as an unwritable path
        tmp.unlink(missing_ok=True)
        raise ValidationError(f"cannot write {what} to {path}: {exc.strerror or exc}",
                              hint=hint) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
