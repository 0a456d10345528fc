"""Stateful property test: random sequences of protocol calls (legal and illegal, by parties and strangers, before
and after deadlines) drive the deal contract on anvil and a Python model side by side.

The model is the twin's own rules: legal moves from `mechanisms.protocol.TRANSITIONS`, escrow terms from the
`lilypad_v2` mechanism's `set_terms`, and at a terminal state the transfers its `settle` produces. After every
step: each deal's escrow on chain equals the model's, the contract holds exactly the free balances plus the
escrows it owes, every refused call reverted with the expected named error and moved nothing, and every settled
deal's on-chain transfers equal the twin's (step, reason, direction, payer, payee, amount).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, initialize, invariant, precondition, rule

from live.chain.binding import Terms
from live.chain.differential import by_deal, public
from live.chain.events import fetch, transfers
from mechanisms.base import MechanismStack
from mechanisms.deals import DealBatch
from mechanisms.protocol import TRANSITIONS, DealState
from tests.contracts.stateful import DEAD, ChainMachine, Shared, run_machine, shared_deployment

S = DealState
MECHANISM = {
    "order": ["lilypad_v2"],
    "lilypad_v2": {
        "slash_to": "mediator",
        "forfeit_payment": False,
        "submit_timeout_collateral": 7,
        "judge_timeout_collateral": 3,
        "payment_collateral_bps": 12_500,
        "deadline_agree": 8,
        "deadline_submit": 12,
        "deadline_judge": 10,
        "deadline_mediate": 12,
    },
}
N_MEDIATORS = 3
ACCOUNTS = 2 + N_MEDIATORS + 1  # client, node, mediators, stranger; pools follow
POOL_BASE = ACCOUNTS


@pytest.fixture(scope="module")
def shared() -> Iterator[Shared]:
    with shared_deployment(MECHANISM, ACCOUNTS, slice(2, 2 + N_MEDIATORS)) as s:
        yield s


@dataclass
class Model:
    """The model of one deal."""

    terms: Terms
    batch: DealBatch  # the twin's terms for it
    state: DealState = S.DealNegotiating
    agreed: set[str] = field(default_factory=set)
    since: int = 0
    escrow: int = 0
    mediator: int = -1
    exists: bool = False


def twin_batch(stack: MechanismStack, t: Terms, book: dict[str, int]) -> DealBatch:
    d = DealBatch(
        deal_id=np.array([t.nonce]),
        client=np.array([book[t.client]]),
        node=np.array([book[t.node]]),
        job=np.zeros(1, dtype=np.int64),
        module=np.zeros(1, dtype=np.int64),
        price=np.array([t.price]),
        instructions=np.array([t.instructions]),
        job_cost=np.array([t.price * t.instructions]),
        compute_cost=np.zeros(1, dtype=np.int64),
        mutual_mediators=np.array([t.mediators]),
        mediator_accounts=np.arange(2, 2 + N_MEDIATORS, dtype=np.int64),
        mediator_threshold=np.zeros(N_MEDIATORS, dtype=np.int64),
        pool_base=POOL_BASE,
    )
    stack.set_terms(d)
    return d


def twin_settlement(stack: MechanismStack, m: Model) -> list[tuple[int, ...]]:
    """The twin's public transfers of the deal, for its terminal state and the decisions taken."""
    d = m.batch
    d.client_agreed = np.array([m.terms.client in m.agreed])
    d.node_agreed = np.array([m.terms.node in m.agreed])
    d.mediator = np.array([m.mediator])
    d.checked = d.mediator >= 0
    d.state = np.array([int(m.state)])
    return by_deal(public(stack.settle(d))).get(m.terms.nonce, [])


class DealMachine(ChainMachine):
    deals = Bundle("deals")
    seen: ClassVar[set[str]] = set()  # terminal states reached and errors provoked over all sequences (coverage check)
    sequences = 0

    def __init__(self) -> None:
        super().__init__()
        self.models: dict[int, Model] = {}
        self.nonce = 0

    # ---------------------------------------------------------------- helpers

    def expect(
        self, m: Model, caller: str, allowed: tuple[str, ...], state: DealState, deadline: int | None, late: bool
    ) -> str | None:
        """The contract's error for a lifecycle call (UnknownDeal, NotParty, WrongState, then the deadline)."""
        if not m.exists:
            return "UnknownDeal"
        if caller not in allowed:
            return "NotParty"
        if m.state != state:
            return "WrongState"
        next_block = self.block() + 1
        if deadline is not None:
            passed = next_block > m.since + deadline
            if late and not passed:
                return "DeadlineNotReached"
            if not late and passed:
                return "DeadlinePassed"
        return None

    def move(self, m: Model, to: DealState) -> None:
        assert to in TRANSITIONS[m.state]
        m.state, m.since = to, self.block()
        DealMachine.seen.add(to.name)

    # ---------------------------------------------------------------- rules

    @initialize()
    def start(self) -> None:
        self.start_block = self.block() + 1

    @rule(
        target=deals,
        price=st.integers(1, 50),
        instructions=st.integers(1, 9),
        mediators=st.integers(1, 2**N_MEDIATORS - 1),
    )
    def new_deal(self, price: int, instructions: int, mediators: int) -> int:
        s = self.shared
        self.nonce += 1
        t = Terms(s.who[0], s.who[1], price, instructions, 20_000, 0, mediators, self.nonce)
        self.models[self.nonce] = Model(t, twin_batch(s.stack, t, s.book))
        return self.nonce

    @rule(deal=deals, party=st.sampled_from(["client", "node", "stranger"]))
    def agree(self, deal: int, party: str) -> None:
        m, s = self.models[deal], self.shared
        caller = {"client": m.terms.client, "node": m.terms.node, "stranger": s.who[-1]}[party]
        if caller not in (m.terms.client, m.terms.node):
            err = "NotParty"
        elif m.exists and m.state != S.DealNegotiating:
            err = "WrongState"
        elif m.exists and self.block() + 1 > m.since + s.dep.params.deadline_agree:
            err = "DeadlinePassed"
        elif caller in m.agreed:
            err = "AlreadyAgreed"
        else:
            err = None
        if self.try_send(s.dep.agree(m.terms, caller), err):
            b = m.batch
            m.escrow += (
                int(b.payment_collateral[0] + b.judge_collateral[0])
                if caller == m.terms.client
                else int(b.submit_collateral[0])
            )
            if not m.exists:
                m.exists, m.since = True, self.block()
            m.agreed.add(caller)
            if len(m.agreed) == 2:
                self.move(m, S.DealAgreed)

    @rule(deal=deals, as_client=st.booleans())
    def submit(self, deal: int, as_client: bool) -> None:
        m, s = self.models[deal], self.shared
        caller = m.terms.client if as_client else m.terms.node
        err = self.expect(m, caller, (m.terms.node,), S.DealAgreed, s.dep.params.deadline_submit, False)
        if self.try_send({**s.dep.submit(m.terms, b"\x05" * 32), "from": caller}, err):
            m.escrow += int(m.batch.results_collateral[0] - m.batch.submit_collateral[0])
            self.move(m, S.ResultsSubmitted)

    @rule(deal=deals, check=st.booleans(), rank=st.integers(0, 2), stranger=st.booleans())
    def judge(self, deal: int, check: bool, rank: int, stranger: bool) -> None:
        m, s = self.models[deal], self.shared
        caller = s.who[-1] if stranger else m.terms.client
        err = self.expect(m, caller, (m.terms.client,), S.ResultsSubmitted, s.dep.params.deadline_judge, False)
        if not check:
            if self.try_send({**s.dep.accept(m.terms), "from": caller}, err):
                self.move(m, S.ResultsAccepted)
                m.escrow = 0
            return
        count = bin(m.terms.mediators).count("1")
        if err is None:
            s.chain.send([s.dep.set_draws([s.dep.deal_id(m.terms)], [rank])])
            err = self.expect(m, caller, (m.terms.client,), S.ResultsSubmitted, s.dep.params.deadline_judge, False)
        if self.try_send({**s.dep.check(m.terms), "from": caller}, err):
            bits = [b for b in range(N_MEDIATORS) if m.terms.mediators >> b & 1]
            m.mediator = bits[rank % count]
            m.escrow += int(m.batch.mediation_fee[0] - m.batch.judge_collateral[0])
            self.move(m, S.ResultsChecked)

    @rule(deal=deals, accept=st.booleans(), who=st.integers(0, N_MEDIATORS))
    def mediate(self, deal: int, accept: bool, who: int) -> None:
        m, s = self.models[deal], self.shared
        caller = s.who[2 + who] if who < N_MEDIATORS else s.who[-1]
        chosen = s.who[2 + m.mediator] if m.mediator >= 0 else None
        err = self.expect(
            m, caller, (chosen,) if chosen else (), S.ResultsChecked, s.dep.params.deadline_mediate, False
        )
        if self.try_send(s.dep.mediate(m.terms, caller, accept), err):
            self.move(m, S.MediationAccepted if accept else S.MediationRejected)
            m.escrow = 0

    @rule(
        deal=deals,
        phase=st.sampled_from(["agree", "submit", "judge", "mediate"]),
        party=st.sampled_from(["client", "node", "stranger"]),
    )
    def timeout(self, deal: int, phase: str, party: str) -> None:
        m, s = self.models[deal], self.shared
        caller = {"client": m.terms.client, "node": m.terms.node, "stranger": s.who[-1]}[party]
        p = s.dep.params
        state, allowed, deadline, to = {
            "agree": (S.DealNegotiating, (m.terms.client, m.terms.node), p.deadline_agree, S.TimeoutAgree),
            "submit": (S.DealAgreed, (m.terms.client,), p.deadline_submit, S.TimeoutSubmitResults),
            "judge": (S.ResultsSubmitted, (m.terms.node,), p.deadline_judge, S.TimeoutJudgeResults),
            "mediate": (S.ResultsChecked, (m.terms.client, m.terms.node), p.deadline_mediate, S.TimeoutMediateResults),
        }[phase]
        err = self.expect(m, caller, allowed, state, deadline, True)
        if self.try_send(s.dep.timeout(phase, m.terms, caller), err):
            self.move(m, to)
            m.escrow = 0

    @rule(
        target=deals,
        price=st.integers(1, 50),
        choices=st.lists(st.integers(0, 3), min_size=6, max_size=6),
        rank=st.integers(0, 2),
    )
    def whole_deal(self, price: int, choices: list[int], rank: int) -> int:
        """A new deal driven by legal steps (or timeouts) to a terminal state."""
        deal = self.new_deal(price=price, instructions=3, mediators=0b111)
        for choice in choices:
            if self.models[deal].state not in TRANSITIONS:
                break
            self.step(deal, choice, rank)
        return deal

    @rule(deal=deals, choices=st.lists(st.integers(0, 3), min_size=1, max_size=6), rank=st.integers(0, 2))
    def advance(self, deal: int, choices: list[int], rank: int) -> None:
        """Legal next steps for the deal's state, or its timeout (so sequences reach every terminal state)."""
        for choice in choices:
            self.step(deal, choice, rank)

    def step(self, deal: int, choice: int, rank: int) -> None:
        m, p = self.models[deal], self.shared.dep.params
        mediator = m.mediator if m.mediator >= 0 else 0
        late = choice == 3
        deadline = {
            S.DealNegotiating: p.deadline_agree,
            S.DealAgreed: p.deadline_submit,
            S.ResultsSubmitted: p.deadline_judge,
            S.ResultsChecked: p.deadline_mediate,
        }.get(m.state)
        if deadline is None:
            return
        if late and (m.exists or m.state != S.DealNegotiating):
            phase = {
                S.DealNegotiating: "agree",
                S.DealAgreed: "submit",
                S.ResultsSubmitted: "judge",
                S.ResultsChecked: "mediate",
            }[m.state]
            caller = "node" if phase == "judge" else "client"
            self.timeout(deal, phase, caller)  # too early, unless the deadline already passed
            if m.state in TRANSITIONS:
                self.shared.chain.mine(max(0, m.since + deadline - self.block()) + 1)
                self.step(deal, 0, rank)  # the phase's own call, now too late
                self.timeout(deal, phase, caller)
        elif m.state == S.DealNegotiating and choice == 2 and m.agreed:  # the same party agrees again
            self.agree(deal, "client" if m.terms.client in m.agreed else "node")
        elif m.state == S.DealNegotiating:
            missing = [x for x in ("client", "node") if getattr(m.terms, x) not in m.agreed]
            self.agree(deal, missing[choice % len(missing)])
        elif m.state == S.DealAgreed:
            self.submit(deal, as_client=False)
        elif m.state == S.ResultsSubmitted:
            self.judge(deal, check=choice > 0, rank=rank, stranger=False)
        else:
            self.mediate(deal, accept=choice == 0, who=mediator)

    @rule(blocks=st.integers(1, 15))
    def wait(self, blocks: int) -> None:
        self.shared.chain.mine(blocks)

    # ---------------------------------------------------------------- invariants

    @precondition(lambda self: bool(self.models))
    @invariant()
    def escrows_match_the_model(self) -> None:
        s = self.shared
        models = list(self.models.values())
        ids = [(s.dep.deal_id(m.terms),) for m in models]
        assert s.dep.read_many("escrowOf", ids) == [m.escrow for m in models]

    @invariant()
    def contract_holds_what_it_owes(self) -> None:
        s = self.shared
        owners = [*s.who, DEAD, s.dep.protocol]
        owed = sum(s.dep.read_many("balanceOf", [(a,) for a in owners])) + sum(m.escrow for m in self.models.values())
        assert int(s.dep.token.functions.balanceOf(s.dep.deals.address).call()) == owed

    @precondition(lambda self: any(m.state not in TRANSITIONS for m in self.models.values()))
    @invariant()
    def settled_deals_transfer_like_the_twin(self) -> None:
        s = self.shared
        chain = by_deal(transfers(fetch(s.dep, self.start_block), s.book))
        for m in self.models.values():
            if m.state not in TRANSITIONS:
                assert chain.get(m.terms.nonce, []) == twin_settlement(s.stack, m), DealState(m.state).name


@pytest.mark.slow
def test_contract_and_model_agree_over_random_sequences(shared: Shared, record_property: pytest.RecordProperty) -> None:
    run_machine(DealMachine, shared, settings_examples(), 12)
    record_property("sequences", DealMachine.sequences)
    terminal = {st.name for st in DealState if st not in TRANSITIONS}
    errors = {"UnknownDeal", "NotParty", "WrongState", "DeadlinePassed", "DeadlineNotReached", "AlreadyAgreed"}
    assert terminal | errors <= DealMachine.seen, sorted(terminal | errors - DealMachine.seen)


def settings_examples() -> int:
    return int(os.environ.get("STATEFUL_EXAMPLES", 300))
