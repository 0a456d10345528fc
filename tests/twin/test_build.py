"""The one seeded builder: every test and benchmark builds its run through `twin.build`, so seed N is one run."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OWN_STREAMS = re.compile(r"SeedSequence\(|\.spawn\(")


def test_no_test_or_benchmark_splits_seeds_on_its_own() -> None:
    """Splitting a seed into streams is `twin.build`'s job (in a fixed order); a test or benchmark that did it
    itself could give seed N a different meaning than `simulate` does."""
    sources = [*REPO.joinpath("tests").rglob("*.py"), *REPO.joinpath("benchmarks").rglob("*.py")]
    offenders = [str(p.relative_to(REPO)) for p in sources if p != Path(__file__) and OWN_STREAMS.search(p.read_text())]
    assert len(sources) > 10
    assert offenders == []
