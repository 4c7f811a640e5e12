"""Memory readings the benchmarks share (Linux): the process's resident set size now and at its
peak, in MiB. Imported by the scripts beside it (``python benchmarks/X.py`` puts this folder on
``sys.path``, and spawned measuring processes inherit it)."""

from __future__ import annotations

import resource


def rss_mib() -> float:
    """Current resident set size of this process in MiB (/proc/self/statm; NaN elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:
        return float("nan")


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Reset this process's peak resident set size to its current one (Linux >= 4.0: writing 5 to
    /proc/self/clear_refs), so that :func:`peak_rss_mib` then reads the peak of what follows.
    Returns False where that is not possible (the peak then stays the whole process's)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
