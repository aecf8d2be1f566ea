"""Fault plans for the E-utilities replay server.

A plan decides, for the Nth request the server receives (1-based, over all endpoints), whether
to answer with a fault instead of the real response. Two spellings:

- ``"429@3,500@7,timeout@9,truncate@11,error200@13,reset@15,slow@17,omit@19,empty@21"``:
  that exact request gets that fault (one fault per request number);
- ``"random:0.2"``: every request gets a fault with probability 0.2, the kind drawn uniformly
  from :data:`RANDOM_KINDS`, from a generator seeded by the server's ``seed`` so a run can be
  replayed exactly.

Kinds: ``429`` (NCBI's rate-limit JSON, with ``Retry-After``), ``500``/``502``/``503`` (NCBI's
HTML error page), ``timeout`` (hold the connection longer than the client waits), ``reset``
(close the socket abruptly), ``truncate`` (cut the XML body in the middle), ``error200`` (a 200
carrying a transient ``<ERROR>``), ``slow`` (answer correctly, but late), ``omit`` (an efetch
answer, well-formed, that leaves out the last record it would hold, as a transiently incomplete
answer would; real NCBI leaves a PMID out the same way when it is deleted, so the poller must
ask again before it believes a deletion; other endpoints answer normally), ``empty`` (an efetch
answer that is the empty ``PubmedArticleSet`` whatever it asked for: the answer for PMIDs PubMed
has no record of, given for records it has, as an NCBI fault may; other endpoints answer
normally).
"""

from __future__ import annotations

import random
import threading

from store.errors import ValidationError
from store.ids import is_ascii_number

KINDS = ("429", "500", "502", "503", "timeout", "reset", "truncate", "error200", "slow", "omit",
         "empty")
#: Kinds drawn by ``random:P`` plans. "slow" is left out: it is not a failure. "omit" is left
#: out: a poll recovers from it only for PMIDs it had stored (it asks for them again); a new
#: PMID left out is, by design, only counted as missing (nothing tells it from a bad PMID), so
#: a soak with omissions could not end in the fault-free database. "empty" too, for the same
#: reason.
RANDOM_KINDS = ("429", "500", "503", "timeout", "reset", "truncate", "error200")


class FaultPlan:
    """Which request numbers get which fault. Thread-safe; ``next()`` is called once per request."""

    def __init__(self, fixed: dict[int, str] | None = None, *, probability: float = 0.0,
                 seed: int = 0) -> None:
        self.fixed = dict(fixed or {})
        self.probability = probability
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._count = 0

    @property
    def spec(self) -> str:
        if self.probability:
            return f"random:{self.probability}"
        return ",".join(f"{kind}@{n}" for n, kind in sorted(self.fixed.items()))

    def next(self) -> tuple[int, str | None]:
        """Count one request; return its number and its fault (None: answer normally)."""
        with self._lock:
            self._count += 1
            n = self._count
            if n in self.fixed:
                return n, self.fixed[n]
            if self.probability and self._rng.random() < self.probability:
                return n, self._rng.choice(RANDOM_KINDS)
            return n, None


def parse_fault_spec(spec: str | None, *, seed: int = 0) -> FaultPlan:
    """Parse a ``--faults`` value; raise ValidationError naming the bad part."""
    if spec is None or not spec.strip():
        return FaultPlan()
    spec = spec.strip()
    if spec.startswith("random:"):
        raw = spec.removeprefix("random:")
        try:
            probability = float(raw)
        except ValueError:
            raise ValidationError(
                f"fault spec {spec!r}: {raw!r} is not a probability", hint="e.g. random:0.2"
            ) from None
        if not 0.0 <= probability <= 1.0:
            raise ValidationError(f"fault spec {spec!r}: probability must be between 0 and 1")
        return FaultPlan(probability=probability, seed=seed)
    fixed: dict[int, str] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        kind, sep, number = part.partition("@")
        if not sep or not is_ascii_number(number.strip()) or int(number) < 1:
            raise ValidationError(
                f"fault spec part {part!r} is not KIND@N",
                hint=f"e.g. 429@3,500@7; kinds: {', '.join(KINDS)}",
            )
        if kind.strip() not in KINDS:
            raise ValidationError(
                f"fault spec part {part!r}: unknown fault {kind.strip()!r}",
                hint=f"kinds: {', '.join(KINDS)}",
            )
        n = int(number)
        if n in fixed:
            raise ValidationError(f"fault spec {spec!r}: request {n} has two faults")
        fixed[n] = kind.strip()
    return FaultPlan(fixed, seed=seed)
