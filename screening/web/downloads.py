"""CSV files the browser downloads (the summary of findings, the search log), one way.

``?excel=1`` starts the file with a byte order mark (``store.spreadsheet.EXCEL_BOM``): the
review panels who open these in Excel on Windows would otherwise see accented author and
trial names garbled; the plain file stays the default for R and pandas.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import IO

from fastapi.responses import Response, StreamingResponse

from store.spreadsheet import EXCEL_BOM

log = logging.getLogger("mmlr.web.downloads")


def _attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


def csv_download(write: Callable[[IO[str]], None], filename: str, *,
                 excel: bool = False) -> Response:
    """The CSV ``write`` produces, as an attachment named ``filename``."""
    buffer = io.StringIO()
    if excel:
        buffer.write(EXCEL_BOM)
    write(buffer)
    return Response(buffer.getvalue(), media_type=_CSV, headers=_attachment(filename))


def csv_stream(chunks: Iterable[str], filename: str, *, excel: bool = False) -> Response:
    """The CSV text of ``chunks``, sent as it is made, as an attachment named ``filename``:
    for files too long to hold whole (the audit trail). The status is sent with the first
    piece, so whatever can be refused is refused before; a failure later ends the download
    unfinished (the browser says it failed) and is logged."""
    def pieces() -> Iterator[bytes]:
        if excel:
            yield EXCEL_BOM.encode()
        try:
            for chunk in chunks:
                yield chunk.encode()
        except Exception:
            log.exception("the download of %s stopped unfinished", filename)
            raise

    return StreamingResponse(pieces(), media_type=_CSV, headers=_attachment(filename))


_CSV = "text/csv; charset=utf-8"
