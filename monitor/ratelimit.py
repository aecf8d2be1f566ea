"""One process-wide request spacer per E-utilities identity (API key or anonymous).

NCBI counts requests per IP (or per key) per second, over every thread and client of a
process, so the limiter must be shared: :func:`shared_limiter` hands out one instance per
identity. Spacing requests ``1/rate`` apart (rather than a bursty token bucket) keeps any
sliding second at or below the rate, which is what NCBI's counter measures.

NCBI counts *arrivals*, though, and a request held up on the way (a busy machine, a slow
network) arrives late while the next one, sent on time, does not: two arrivals then come less
than an interval apart, and four slots 0.37 s apart can land within one second. So
:meth:`RateLimiter.release`, called when an answer has come back, also puts the next slot at
least one interval after that moment: a request is sent only after its predecessor was
answered, so its arrival is at least one interval after the predecessor's, whatever the
delays on the way.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Thread-safe spacer: ``acquire()`` returns when the next request may be sent."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0

    @property
    def interval(self) -> float:
        return 1.0 / self.rate

    def acquire(self) -> float:
        """Block until this caller's slot; return the seconds waited."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        wait = slot - now
        if wait > 0:
            self._sleep(wait)
        return wait

    def release(self) -> None:
        """A request's answer (or its failure) has come back: the next slot is at least one
        interval from now (module docstring: arrivals, not sends, are counted)."""
        with self._lock:
            self._next = max(self._next, self._clock() + self.interval)

    def defer(self, seconds: float) -> None:
        """Push every caller back (a 429 or Retry-After says the server wants a pause)."""
        with self._lock:
            self._next = max(self._next, self._clock() + seconds)


_registry: dict[str, RateLimiter] = {}
_registry_lock = threading.Lock()


def shared_limiter(identity: str | None, rate: float) -> RateLimiter:
    """The process's limiter for this identity (API key or None), set to ``rate``."""
    # Only a digest of the key is kept, so the key cannot leak from this registry.
    key = hashlib.sha256(identity.encode()).hexdigest()[:16] if identity else "anonymous"
    with _registry_lock:
        limiter = _registry.get(key)
        if limiter is None:
            limiter = _registry[key] = RateLimiter(rate)
        elif limiter.rate != rate:
            limiter.rate = rate
        return limiter
