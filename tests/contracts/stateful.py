"""What the stateful contract tests share: one anvil deployment per module (each sequence reverts to its snapshot)
and a state machine base that sends a call only where its model expects success, and otherwise requires the named
revert with nothing moved."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import RuleBasedStateMachine

from live.chain.binding import Deployment, deploy
from live.chain.node import AnvilChain, ChainError
from live.chain.params import chain_params
from mechanisms.base import MechanismStack
from mechanisms.money import Pool

DEAD = "0x000000000000000000000000000000000000dEaD"


@dataclass
class Shared:
    chain: AnvilChain
    dep: Deployment
    stack: MechanismStack
    who: list[str]  # account id -> address
    book: dict[str, int]  # address -> the twin's account id (pools after the parties)
    snap: object = None


@contextmanager
def shared_deployment(mechanism: Mapping[str, Any], accounts: int, mediators: slice) -> Iterator[Shared]:
    """Deploy `mechanism` on a fresh anvil for `accounts` parties (the `mediators` slice of them mediate), every
    party approved, burn and protocol booked as the twin's pools."""
    stack = MechanismStack.from_mapping(dict(mechanism), "mechanism")
    with AnvilChain(accounts + 3) as chain:
        acc = chain.accounts
        who = acc[1 : 1 + accounts]
        dep = deploy(
            chain,
            chain_params(stack),
            who[mediators],
            acc[-1],
            who,
            [10**9] * accounts,
            beacon="scripted",
            deployer=acc[0],
        )
        chain.send([dep.approve(a, 2**255) for a in who])
        book = {a: i for i, a in enumerate(who)} | {DEAD: accounts + Pool.Burn, acc[-1]: accounts + Pool.Protocol}
        s = Shared(chain, dep, stack, who, book)
        s.snap = chain.snapshot()
        yield s


class ChainMachine(RuleBasedStateMachine):
    """Each sequence starts from the deployment's snapshot; subclasses keep their own `seen` coverage set."""

    shared: Shared
    seen: ClassVar[set[str]]
    sequences: ClassVar[int]

    def __init__(self) -> None:
        super().__init__()
        s = self.shared
        s.chain.revert(s.snap)
        s.snap = s.chain.snapshot()
        type(self).sequences += 1

    def block(self) -> int:
        return self.shared.chain.block_number()

    def try_send(self, tx: dict, expected_error: str | None) -> bool:
        """Send `tx` if the model expects success; otherwise require the named revert and that nothing moved."""
        s = self.shared
        got = s.dep.revert_of(tx)
        if expected_error is None:
            assert got is None, f"model expects success, contract reverts with {got}"
            s.chain.send([tx])
            return True
        assert got is not None and got.name == expected_error, f"expected {expected_error}, got {got}"
        type(self).seen.add(expected_error)
        with pytest.raises(ChainError):
            s.chain.send([tx])  # mined and failed: nothing may move (checked by the invariants)
        return False


def run_machine(machine: type[ChainMachine], shared: Shared, examples: int, steps: int) -> None:
    """Run `examples` derandomized sequences of at most `steps` steps (no shrinking: a failure prints its sequence)."""
    machine.shared = shared
    run = machine.TestCase
    run.settings = settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.explicit, Phase.generate),
    )
    run("runTest").runTest()
    assert machine.sequences >= examples
