"""Input files named on the command line (``mmlr meta FILE``, ``mmlr poll --pmids FILE``,
``mmlr simulate DATASET``):
what stops one being read, in words, before it is opened."""

from __future__ import annotations

import stat
from pathlib import Path


def input_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as an input file ("does not exist", "is not a file",
    "cannot be read: File name too long"), or None when it is a regular file.

    ``os.stat`` rather than ``Path.exists``/``is_file``: those raised for what the system
    cannot even look up (a name longer than the file system allows, a folder on the way that
    may not be searched), an internal error where a line was due."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "does not exist"
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    return None if stat.S_ISREG(mode) else "is not a file"
