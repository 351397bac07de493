"""The test suite's peak memory and wall time: pytest in a child process, measured from outside.

    python -m bench.suite_memory                      # the suite as `make pytest` runs it
    python -m bench.suite_memory --limit-gib 4 -- tests/test_api.py -q

Two peaks: the **whole tree** (pytest and every process it starts: fixture engine servers,
console jobs, Chromium, summed), sampled every 0.2 s with psutil, which is what the machine
must hold; and the largest **single process** (`ru_maxrss` of RUSAGE_CHILDREN, which is what
`/usr/bin/time -v` reports). The exit code is pytest's, or 1 when the tree's peak passes
`--limit-gib`. A sampler can miss a spike shorter than its period, so the tree's figure is a
lower bound by up to one allocation burst.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import subprocess
import sys
import threading
import time

import psutil

DEFAULT_ARGS = ["-m", "not gpu", "-p", "no:cacheprovider", "-q"]
PERIOD_S = 0.2


def tree_rss(root: psutil.Process) -> int:
    """Resident bytes of a process and all its descendants now; gone processes count 0."""
    total = 0
    try:
        members = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    for process in members:
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total


class TreeSampler(threading.Thread):
    """Keeps the largest tree_rss of one process until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self._root = psutil.Process(pid)
        self._done = threading.Event()
        self.peak = 0

    def run(self) -> None:
        while not self._done.wait(PERIOD_S):
            self.peak = max(self.peak, tree_rss(self._root))

    def stop(self) -> None:
        self._done.set()
        self.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit-gib", type=float, default=None, help="fail above this peak")
    parser.add_argument("pytest_args", nargs="*", help="after --; default: the whole suite")
    args = parser.parse_args()
    started = time.monotonic()
    pytest = subprocess.Popen([sys.executable, "-m", "pytest", *(args.pytest_args or DEFAULT_ARGS)])
    sampler = TreeSampler(pytest.pid)
    sampler.start()
    code = pytest.wait()
    sampler.stop()
    wall = time.monotonic() - started
    tree_gib = sampler.peak / 1024**3
    single_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2  # KiB on Linux
    print(
        f"pytest exit code {code}; peak RSS {tree_gib:.2f} GiB for the whole tree "
        f"({sampler.peak / 1e9:.2f} GB), {single_gib:.2f} GiB for the largest process; "
        f"wall {wall / 60:.1f} min"
    )
    if args.limit_gib is not None and tree_gib > args.limit_gib:
        print(f"the tree's peak RSS is over the limit of {args.limit_gib} GiB")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
