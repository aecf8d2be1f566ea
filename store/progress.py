"""The progress bar of long command-line work: on standard error, gone when done.

Standard output is the command's answer (a table, JSON, a CSV) that a script may read; a bar
drawn there left a blank line in front of ``mmlr simulate``'s result when piped.
"""

from __future__ import annotations

from typing import Any


def progress_bar(*columns: Any) -> Any:
    """A rich ``Progress`` with these columns (rich's default ones when none) on stderr."""
    from rich.console import Console
    from rich.progress import Progress

    return Progress(*columns, console=Console(stderr=True), transient=True)


__all__ = ["progress_bar"]
