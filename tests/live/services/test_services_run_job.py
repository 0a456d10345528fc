"""The run_job CLI's arguments: the module first, `-i Key=Value` pairs, then Hydra overrides; bad ones are
refused with a clear error before anything starts."""

from __future__ import annotations

import pytest

from live.modules import ModuleError
from live.run_job import split_args


def test_split_args() -> None:
    assert split_args(["cowsay:v1", "-i", "Message=moo", "block_s=0.1"]) == (
        "cowsay:v1",
        ["Message=moo"],
        ["block_s=0.1"],
    )
    with pytest.raises(ModuleError, match="module is missing"):
        split_args(["-i", "Message=moo"])
    with pytest.raises(ModuleError, match="-i needs"):
        split_args(["cowsay:v1", "-i"])
