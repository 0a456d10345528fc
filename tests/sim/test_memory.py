"""Freed memory stays in the process for the next round once an entry point opts in (glibc only)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sim.memory import keep_freed_memory

PROBE = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from sim.memory import keep_freed_memory
    assert keep_freed_memory()
def faults_of_a_round():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    arrays = [np.ones(8_000_000) for _ in range(2)]  # 128 MB in blocks as large as a round's transfer columns
    del arrays
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults_of_a_round()
print(faults_of_a_round())
"""


def faults(mode: str) -> int:
    """Page faults of a second 'round' in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux") or not keep_freed_memory(), reason="needs glibc's mallopt")
def test_a_second_round_reuses_the_first_rounds_memory() -> None:
    default, kept = faults("default"), faults("keep")
    assert default > 100  # each round faults its memory in again (huge pages make it fewer than 4 KiB pages)
    assert kept * 10 < default  # ... unless freed memory is kept
