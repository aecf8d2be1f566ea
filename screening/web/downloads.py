"""CSV files the browser downloads (the summary of findings, the search log), one way.

``?excel=1`` starts the file with a byte order mark (``store.spreadsheet.EXCEL_BOM``): the
review panels who open these in Excel on Windows would otherwise see accented author and
trial names garbled; the plain file stays the default for R and pandas.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import IO

from fastapi.responses import Response

from store.spreadsheet import EXCEL_BOM


def csv_download(write: Callable[[IO[str]], None], filename: str, *,
                 excel: bool = False) -> Response:
    """The CSV ``write`` produces, as an attachment named ``filename``."""
    buffer = io.StringIO()
    if excel:
        buffer.write(EXCEL_BOM)
    write(buffer)
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
