"""Benchmark of the password hash: one login's scrypt at the cost mmlr ships, against the cost
it shipped before 2026-12 (2**14 x 8 x 1, the baseline) and OWASP's 2**17 x 8 x 1 form.

    python bench/password.py [--repeats 7] [--burst 8]

For each cost: the median time of one ``verify_password`` of a stored hash (what a login
and a failed login cost; ``--repeats`` after one warm-up), its ratio to the baseline, and the
peak resident memory of a fresh interpreter that checks ``--burst`` logins at once in
threads (as the web app's thread pool would), measured with ``resource.getrusage`` in a
subprocess so the costs do not share a heap.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import median_ms

from screening.web import auth

_BURST = """
import hashlib, resource, sys
from concurrent.futures import ThreadPoolExecutor
n, r, p, k = map(int, sys.argv[1:])
def one(i):
    return hashlib.scrypt(b"bench-password", salt=bytes([i]) * 16, n=n, r=r, p=p, dklen=32,
                          maxmem=2**29)
with ThreadPoolExecutor(k) as pool:
    list(pool.map(one, range(k)))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def stored_hash(n: int, r: int, p: int) -> str:
    salt = b"\x07" * 16
    digest = hashlib.scrypt(b"bench-password", salt=salt, n=n, r=r, p=p, dklen=32, maxmem=2**29)
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def burst_mib(n: int, r: int, p: int, k: int) -> float:
    out = subprocess.run([sys.executable, "-c", _BURST, str(n), str(r), str(p), str(k)],
                         check=True, capture_output=True, text=True).stdout
    return int(out.split()[-1]) / 1024  # ru_maxrss is in KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--burst", type=int, default=8)
    args = parser.parse_args(argv)
    shipped = (auth._SCRYPT_N, auth._SCRYPT_R, auth._SCRYPT_P)
    costs = [("before 2026-12 (baseline)", (2**14, 8, 1)), ("shipped", shipped),
             ("OWASP 2**17 form", (2**17, 8, 1))]
    print(f"{'cost':28} {'N x r x p':18} {'login ms':>9} {'ratio':>6} "
          f"{f'peak MiB, {args.burst} at once':>22}")
    base = None
    for name, (n, r, p) in costs:
        stored = stored_hash(n, r, p)
        ms = median_ms(partial(auth.verify_password, "bench-password", stored), args.repeats)
        base = base or ms
        print(f"{name:28} {f'2^{n.bit_length() - 1} x {r} x {p}':18} {ms:9.1f} "
              f"{ms / base:5.1f}x {burst_mib(n, r, p, args.burst):22.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
