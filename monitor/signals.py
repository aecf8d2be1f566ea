"""The main thread's wait for SIGTERM or SIGINT, whichever thread the kernel hands it to.

The kernel delivers a signal sent to a process to any of its threads that does not block it:
numpy's OpenBLAS threads, the scheduler's pool, the replay server's. CPython's C-level handler
runs on that thread, but the Python handler waits until the *main* thread next runs bytecode,
and a main thread asleep in a lock wait or ``time.sleep`` is woken early only when the signal
lands on it. ``mmlr worker`` slept in APScheduler's wait for the next cron slot, hours away:
CI once saw it ignore SIGTERM for 60 s, and a loop of worker starts did so about once in 300.

``signal.set_wakeup_fd`` makes the C-level handler, on whichever thread it runs, write the
signal's number to a socket. The main thread sleeps reading that socket instead.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: The signals that stop a long-running command: ``kill``/systemd/Docker, and Ctrl-C.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _noted(_signum: int, _frame: Any) -> None:
    """The Python-level handler has nothing to do: the wakeup socket carries the signal."""


@contextmanager
def stop_signals() -> Iterator[Callable[[], signal.Signals]]:
    """SIGTERM and SIGINT are caught while the block runs; yields ``wait``, which blocks the
    calling (main) thread until one arrives and returns it, at once if one came since the block
    began. A second signal while the block finishes its work (a job ending its batch) is
    ignored. The previous handlers and wakeup fd are put back at the end."""
    reader, writer = socket.socketpair()
    writer.setblocking(False)  # set_wakeup_fd requires it: a handler must never block
    # The socket first: a signal between the two steps still finds a handler that is not ours
    # (the default one ends the process, as before the block), never ours without the socket.
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    previous = {sig: signal.signal(sig, _noted) for sig in STOP_SIGNALS}

    def wait() -> signal.Signals:
        while True:  # other signals with a Python handler write their numbers too
            for number in reader.recv(64):
                if number in STOP_SIGNALS:
                    return signal.Signals(number)

    try:
        yield wait
    finally:
        for sig, handler in previous.items():  # None: a handler not set from Python
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        signal.set_wakeup_fd(previous_fd)
        reader.close()
        writer.close()
