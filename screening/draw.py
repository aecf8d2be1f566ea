"""The fixed, content-blind draw of a record: which records form the random audit sample, and
the order its waiting records are served in (``screening.queue``)."""

from __future__ import annotations

import hashlib


def audit_draw(pmid: int, salt: str = "mmlr-audit") -> float:
    """A fixed pseudo-random number in [0, 1) per PMID: the audit sample is reproducible and
    independent of the record's content and score."""
    digest = hashlib.sha256(f"{salt}:{pmid}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
