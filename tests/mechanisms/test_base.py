"""The stack's dispatcher: additive hooks run every enabled mechanism in order, exclusive ones only the last; a stack
with no mechanism for an exclusive hook is refused, naming the hook."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from mechanisms import MarketFacts, Mechanism, MechanismStack
from mechanisms.config import ConfigError
from mechanisms.hooks import HOOKS
from mechanisms.lilypad_v2 import LilypadV2Config

FACTS = MarketFacts(2, 12, 100, n_clients=1, n_nodes=1)


class Recorder(Mechanism):
    """An unregistered mechanism that implements every hook by recording its call."""

    name = "recorder"
    Config = LilypadV2Config
    calls: ClassVar[list[tuple[str, str]]] = []

    def __init__(self, label: str, skip: str = "") -> None:
        super().__init__(LilypadV2Config())
        self.label, self.skip = label, skip

    def takes_part(self, hook: str) -> bool:
        return hook != self.skip

    def record(self, hook: str) -> None:
        Recorder.calls.append((hook, self.label))


for _hook in HOOKS:

    def _make(hook: str) -> Any:
        def run(self: Recorder, *args: Any) -> Any:
            self.record(hook)
            return np.asarray(args[1]) if hook == "rank_offers" else None

        return run

    setattr(Recorder, _hook.name, _make(_hook.name))


def test_additive_hooks_run_every_taker_in_order_and_exclusive_ones_the_last() -> None:
    a, b, c, d = Recorder("a"), Recorder("b", skip="judge"), Recorder("c"), Recorder("d")
    stack = MechanismStack([a, b, c, d], [True, True, True, False])
    for hook in HOOKS:
        Recorder.calls.clear()
        stack._call(hook.name, None, None, None)
        expected = ["c"] if hook.exclusive else ["a", "b", "c"]
        assert Recorder.calls == [(hook.name, x) for x in expected], hook.name
    Recorder.calls.clear()
    stack.judge(None)  # type: ignore[arg-type]
    assert Recorder.calls == [("judge", "c"), ("review", "a"), ("review", "b"), ("review", "c")]
    # a mechanism that opts out of an exclusive hook leaves it to the one before it
    assert [m.label for m in MechanismStack([a, b], [True, True]).runners("judge")] == ["a"]


def test_offer_ranking_compounds_and_keeps_exclusions() -> None:
    class Halve(Recorder):
        def rank_offers(self, node: np.ndarray, price: np.ndarray, context: Any) -> np.ndarray:
            return np.where(node == 7, -1, price // 2)

    stack = MechanismStack([Halve("x"), Halve("y")], [True, True])
    assert stack.rank_offers(np.array([1, 7]), np.array([40, 40]), None).tolist() == [10, -1]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "order",
    [
        {"order": ["reputation"]},
        {"order": ["lilypad_v2", "reputation"], "lilypad_v2": {"enabled": False}},
        {"order": ["lilypad_v2", "whistleblowing"], "lilypad_v2": {"enabled": False}},
    ],
)
def test_a_stack_without_a_base_mechanism_is_refused(order: dict[str, Any]) -> None:
    with pytest.raises(
        ConfigError,
        match=r"^mechanism: no enabled mechanism implements select_mediators; enable a "
        r"base mechanism such as lilypad_v2$",
    ):
        MechanismStack.from_mapping(order).validate(FACTS)


def test_a_consortium_without_a_base_mechanism_is_refused() -> None:
    """Consortium implements every exclusive hook, but its panels settle on the escrows only a base mechanism sets."""
    with pytest.raises(
        ConfigError,
        match=r"mechanism\.consortium\.enabled=True is invalid: allowed false, or 'lilypad_v2' enabled in "
        r"mechanism\.order too",
    ):
        MechanismStack.from_mapping(
            {"order": ["lilypad_v2", "consortium"], "lilypad_v2": {"enabled": False}, "consortium": {"size": 2}}
        ).validate(FACTS)
