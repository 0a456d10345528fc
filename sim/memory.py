"""Keeping freed memory in the process: a round allocates and frees about the same arrays every time.

A round of 1e6 deals allocates and frees about a gigabyte of arrays. By default glibc hands large blocks straight
back to the operating system (`mmap`/`munmap`, and trimming the heap's top), so the next round faults every page
in again and the kernel zeroes it: on a virtual machine that is a quarter or more of the round's time. Raising
glibc's mmap and trim thresholds keeps freed blocks in the heap for the next round to reuse. The process's peak
memory stays what it was (the round needs it anyway); it is just not returned between rounds.

The setting is process-wide, so entry points opt in (`experiments.simulate`, `benchmarks.engine`); it does nothing
where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's mallopt parameters (malloc.h)
#: Blocks up to this size come from the heap (glibc caps it at HEAP_MAX_SIZE / 2 on some builds; mallopt refuses
#: what it cannot do, and the default stays).
MMAP_THRESHOLD = 1 << 30
TRIM_THRESHOLD = (1 << 31) - 1  # an int: the heap's top is returned only past 2 GiB free
TOP_PAD = 64 << 20  # grow the heap in steps of 64 MiB


@functools.cache
def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse (see module doc); whether it took the settings."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS): nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(
        mallopt(param, value) == 1
        for param, value in (
            (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            (M_TOP_PAD, TOP_PAD),
        )
    )
