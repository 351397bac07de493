"""The test suite's peak memory and wall time: pytest in a child process, measured from outside.

    python -m bench.suite_memory                      # the suite as `make pytest` runs it
    python -m bench.suite_memory --limit-gib 4 -- tests/test_api.py -q

Peak memory is the largest resident set of any finished descendant (`ru_maxrss` of
RUSAGE_CHILDREN): the pytest process itself, since fixture servers are smaller. The exit code is
pytest's, or 1 when the peak passes `--limit-gib`.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

DEFAULT_ARGS = ["-m", "not gpu", "-p", "no:cacheprovider", "-q"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit-gib", type=float, default=None, help="fail above this peak")
    parser.add_argument("pytest_args", nargs="*", help="after --; default: the whole suite")
    args = parser.parse_args()
    started = time.monotonic()
    code = subprocess.call([sys.executable, "-m", "pytest", *(args.pytest_args or DEFAULT_ARGS)])
    wall = time.monotonic() - started
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2  # KiB on Linux
    print(f"pytest exit code {code}; peak RSS {peak_gib:.2f} GiB; wall {wall / 60:.1f} min")
    if args.limit_gib is not None and peak_gib > args.limit_gib:
        print(f"peak RSS is over the limit of {args.limit_gib} GiB")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
