"""Stateful property test of replication on chain: random sequences of job openings, agreements, commits, reveals
(matching or not, early or late), checks, verdicts and timeouts, legal and illegal, drive the deal contract with its
replication module on anvil and a Python model side by side.

After every step: each deal's escrow equals the model's, the contract holds exactly what it owes, every refused
call reverted with the named error the model expects and moved nothing, and every settled deal's transfers equal
the twin's settlement of its job (`mechanisms.replication` on top of `lilypad_v2`). The twin settles a round at
once and the chain deal by deal, so a deal is compared with the twin's settlement of its job in which the other
replica is in the state it had when this deal settled (the prisoner's contract can only see that far).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, invariant, precondition, rule

from live.chain.binding import Terms
from live.chain.differential import by_deal, public
from live.chain.events import fetch, transfers
from live.chain.replay import result_hash
from mechanisms.base import MechanismStack
from mechanisms.deals import CORRECT, DealBatch
from mechanisms.protocol import TRANSITIONS, DealState
from tests.contracts.stateful import DEAD, ChainMachine, Shared, run_machine, shared_deployment

S = DealState
FAKE = 2  # a fake result id (the twin's results are CORRECT or a fake id)
SALT, BAD_SALT = b"\x07" * 32, b"\x08" * 32
MECHANISM = {
    "order": ["lilypad_v2", "replication"],
    "lilypad_v2": {
        "slash_to": "protocol",
        "forfeit_payment": True,
        "submit_timeout_collateral": 7,
        "judge_timeout_collateral": 3,
        "deadline_agree": 8,
        "deadline_submit": 14,
        "deadline_judge": 10,
        "deadline_mediate": 12,
    },
    "replication": {"replicas": 2, "commit_reveal": True, "wrong_deposit_to": "honest_replica"},
}
N_MEDIATORS = 3
ACCOUNTS = 3 + N_MEDIATORS + 1  # client, two nodes, mediators, stranger; pools follow
POOL_BASE = ACCOUNTS


@pytest.fixture(scope="module")
def shared() -> Iterator[Shared]:
    with shared_deployment(MECHANISM, ACCOUNTS, slice(3, 3 + N_MEDIATORS)) as s:
        yield s


@dataclass
class Replica:
    """The model of one replica deal."""

    terms: Terms
    result: int  # what its node will post: CORRECT or FAKE
    state: DealState = S.DealNegotiating
    agreed: set[str] = field(default_factory=set)
    since: int = 0
    escrow: int = 0
    mediator: int = -1
    exists: bool = False
    committed: bool = False
    revealed: bool = False
    other_at_settlement: tuple[DealState, bool] = (S.DealNegotiating, False)  # the other's state, revealed


@dataclass
class Job:
    replicas: list[Replica]
    batch: DealBatch  # the twin's terms of the two deals
    opened: int = 0


def twin_batch(stack: MechanismStack, ts: list[Terms], book: dict[str, int]) -> DealBatch:
    n = len(ts)
    d = DealBatch(
        deal_id=np.array([t.nonce for t in ts]),
        client=np.array([book[t.client] for t in ts]),
        node=np.array([book[t.node] for t in ts]),
        job=np.zeros(n, dtype=np.int64),
        module=np.zeros(n, dtype=np.int64),
        price=np.array([t.price for t in ts]),
        instructions=np.array([t.instructions for t in ts]),
        job_cost=np.array([t.price * t.instructions for t in ts]),
        compute_cost=np.zeros(n, dtype=np.int64),
        mutual_mediators=np.array([t.mediators for t in ts]),
        mediator_accounts=np.arange(3, 3 + N_MEDIATORS, dtype=np.int64),
        mediator_threshold=np.zeros(N_MEDIATORS, dtype=np.int64),
        pool_base=POOL_BASE,
        replica=np.arange(n, dtype=np.int64),
    )
    stack.set_terms(d)
    return d


def twin_settlement(stack: MechanismStack, job: Job, k: int) -> list[tuple[int, ...]]:
    """The twin's public transfers of replica `k`, its job settled with the other replica as it stood then."""
    d, reps = job.batch, job.replicas
    other_state, other_revealed = reps[k].other_at_settlement
    states = [r.state if i == k else other_state for i, r in enumerate(reps)]
    d.client_agreed = np.array([r.terms.client in r.agreed for r in reps])
    d.node_agreed = np.array([r.terms.node in r.agreed for r in reps])
    d.mediator = np.array([r.mediator for r in reps])
    d.checked = d.mediator >= 0
    d.submitted = np.array([r.revealed if i == k else other_revealed for i, r in enumerate(reps)])
    d.result = np.array([r.result for r in reps])
    d.state = np.array([int(s) for s in states])
    return by_deal(public(stack.settle(d))).get(reps[k].terms.nonce, [])


class ReplicationMachine(ChainMachine):
    jobs = Bundle("jobs")
    seen: ClassVar[set[str]] = set()  # terminal states reached, errors provoked, honest replicas paid (coverage)
    sequences = 0

    def __init__(self) -> None:
        super().__init__()
        self.start_block = self.block() + 1
        self.jobs_: list[Job] = []
        self.nonce = 0

    # ---------------------------------------------------------------- helpers

    def reveal_open(self, job: Job) -> bool:
        """Reveals open when both replicas committed or the commit window (from the opening) has passed."""
        window = self.shared.dep.params.commit_blocks
        return all(r.committed for r in job.replicas) or self.block() + 1 > job.opened + window

    def move(self, job: Job, k: int, to: DealState) -> None:
        r = job.replicas[k]
        assert to in TRANSITIONS[r.state]
        r.state, r.since = to, self.block()
        if to not in TRANSITIONS:
            r.escrow = 0
            other = job.replicas[1 - k]
            r.other_at_settlement = (other.state, other.revealed)
        ReplicationMachine.seen.add(to.name)

    # ---------------------------------------------------------------- rules

    @rule(target=jobs, price=st.integers(1, 30), fakes=st.tuples(st.booleans(), st.booleans()), stranger=st.booleans())
    def new_job(self, price: int, fakes: tuple[bool, bool], stranger: bool) -> int:
        s = self.shared
        ts = []
        for k in range(2):
            self.nonce += 1
            ts.append(Terms(s.who[0], s.who[1 + k], price, 3, 20_000, 0, 0b111, self.nonce))
        job = Job(
            [Replica(t, FAKE if f else CORRECT) for t, f in zip(ts, fakes, strict=True)],
            twin_batch(s.stack, ts, s.book),
        )
        if stranger:
            self.try_send(s.dep.open_job(s.who[-1], ts), "NotParty")
        self.try_send(s.dep.open_job(s.who[0], ts), None)
        job.opened = self.block()
        self.jobs_.append(job)
        return len(self.jobs_) - 1

    @rule(job=jobs, k=st.integers(0, 1), party=st.sampled_from(["client", "node", "stranger"]))
    def agree(self, job: int, k: int, party: str) -> None:
        j, s = self.jobs_[job], self.shared
        r = j.replicas[k]
        caller = {"client": r.terms.client, "node": r.terms.node, "stranger": s.who[-1]}[party]
        if caller not in (r.terms.client, r.terms.node):
            err = "NotParty"
        elif r.exists and r.state != S.DealNegotiating:
            err = "WrongState"
        elif r.exists and self.block() + 1 > r.since + s.dep.params.deadline_agree:
            err = "DeadlinePassed"
        elif caller in r.agreed:
            err = "AlreadyAgreed"
        else:
            err = None
        if self.try_send(s.dep.agree(r.terms, caller), err):
            b = j.batch
            r.escrow += int(
                b.payment_collateral[k] + b.judge_collateral[k] if caller == r.terms.client else b.submit_collateral[k]
            )
            if not r.exists:
                r.exists, r.since = True, self.block()
            r.agreed.add(caller)
            if len(r.agreed) == 2:
                self.move(j, k, S.DealAgreed)

    @rule(job=jobs, k=st.integers(0, 1), stranger=st.booleans())
    def commit(self, job: int, k: int, stranger: bool) -> None:
        j, s = self.jobs_[job], self.shared
        r = j.replicas[k]
        caller = s.who[-1] if stranger else r.terms.node
        if caller != r.terms.node:
            err = "NotParty"
        elif r.state != S.DealAgreed:
            err = "WrongState"
        elif r.committed:
            err = "AlreadyCommitted"
        elif self.reveal_open(j):
            err = "CommitClosed"
        else:
            err = None
        if self.try_send({**s.dep.commit(r.terms, result_hash(r.result), SALT), "from": caller}, err):
            r.committed = True

    @rule(job=jobs, k=st.integers(0, 1), bad_salt=st.booleans())
    def reveal(self, job: int, k: int, bad_salt: bool) -> None:
        j, s = self.jobs_[job], self.shared
        r = j.replicas[k]
        if r.state != S.DealAgreed:
            err = "WrongState"
        elif not r.committed:
            err = "NotCommitted"
        elif not self.reveal_open(j):
            err = "RevealNotOpen"
        elif bad_salt:
            err = "BadReveal"
        elif self.block() + 1 > r.since + s.dep.params.deadline_submit:
            err = "DeadlinePassed"
        else:
            err = None
        if self.try_send(s.dep.reveal(r.terms, result_hash(r.result), BAD_SALT if bad_salt else SALT), err):
            b = j.batch
            r.escrow += int(b.results_collateral[k] - b.submit_collateral[k])
            r.revealed = True
            self.move(j, k, S.ResultsSubmitted)

    @rule(job=jobs, k=st.integers(0, 1), check=st.booleans(), rank=st.integers(0, 2))
    def judge(self, job: int, k: int, check: bool, rank: int) -> None:
        j, s = self.jobs_[job], self.shared
        r = j.replicas[k]
        err = self.judge_error(r)
        if not check:
            if self.try_send(s.dep.accept(r.terms), err):
                self.move(j, k, S.ResultsAccepted)
            return
        if err is None:  # the beacon's word first (a block), then the check
            s.chain.send([s.dep.set_draws([s.dep.deal_id(r.terms)], [rank])])
            err = self.judge_error(r)
        if self.try_send(s.dep.check(r.terms), err):
            r.mediator = rank
            r.escrow += int(j.batch.mediation_fee[k] - j.batch.judge_collateral[k])
            self.move(j, k, S.ResultsChecked)

    def judge_error(self, r: Replica) -> str | None:
        if not r.exists:
            return "UnknownDeal"
        if r.state != S.ResultsSubmitted:
            return "WrongState"
        if self.block() + 1 > r.since + self.shared.dep.params.deadline_judge:
            return "DeadlinePassed"
        return None

    @rule(job=jobs, k=st.integers(0, 1), accept=st.booleans(), who=st.integers(0, N_MEDIATORS))
    def mediate(self, job: int, k: int, accept: bool, who: int) -> None:
        j, s = self.jobs_[job], self.shared
        r = j.replicas[k]
        caller = s.who[3 + who] if who < N_MEDIATORS else s.who[-1]
        if r.mediator < 0 or caller != s.who[3 + r.mediator]:
            err = "NotParty"
        elif r.state != S.ResultsChecked:
            err = "WrongState"
        elif self.block() + 1 > r.since + s.dep.params.deadline_mediate:
            err = "DeadlinePassed"
        else:
            err = None
        if self.try_send(s.dep.mediate(r.terms, caller, accept, result_hash(CORRECT)), err):
            self.move(j, k, S.MediationAccepted if accept else S.MediationRejected)

    @rule(
        job=jobs,
        k=st.integers(0, 1),
        phase=st.sampled_from(["agree", "submit", "judge", "mediate"]),
        party=st.sampled_from(["client", "node"]),
    )
    def timeout(self, job: int, k: int, phase: str, party: str) -> None:
        j, s = self.jobs_[job], self.shared
        r = j.replicas[k]
        caller = r.terms.client if party == "client" else r.terms.node
        p = s.dep.params
        state, allowed, deadline, to = {
            "agree": (S.DealNegotiating, (r.terms.client, r.terms.node), p.deadline_agree, S.TimeoutAgree),
            "submit": (S.DealAgreed, (r.terms.client,), p.deadline_submit, S.TimeoutSubmitResults),
            "judge": (S.ResultsSubmitted, (r.terms.node,), p.deadline_judge, S.TimeoutJudgeResults),
            "mediate": (S.ResultsChecked, (r.terms.client, r.terms.node), p.deadline_mediate, S.TimeoutMediateResults),
        }[phase]
        if not r.exists:
            err = "UnknownDeal"
        elif caller not in allowed:
            err = "NotParty"
        elif r.state != state:
            err = "WrongState"
        elif self.block() + 1 <= r.since + deadline:
            err = "DeadlineNotReached"
        else:
            err = None
        if self.try_send(s.dep.timeout(phase, r.terms, caller), err):
            self.move(j, k, to)

    @rule(
        target=jobs,
        price=st.integers(1, 30),
        fakes=st.tuples(st.booleans(), st.booleans()),
        choices=st.lists(st.integers(0, 9), min_size=8, max_size=16),
        rank=st.integers(0, 2),
    )
    def whole_job(self, price: int, fakes: tuple[bool, bool], choices: list[int], rank: int) -> int:
        """A new job whose replicas are driven by legal steps (or waits) towards their settlements."""
        job = self.new_job(price=price, fakes=fakes, stranger=False)
        self.advance(job, choices, rank)
        return job

    @rule(job=jobs, choices=st.lists(st.integers(0, 9), min_size=4, max_size=10), rank=st.integers(0, 2))
    def advance(self, job: int, choices: list[int], rank: int) -> None:
        """Next steps of both replicas, interleaved: mostly legal, some repeated or out of turn, and timeouts after
        waiting out the phase (so sequences reach every settlement and every named error)."""
        p = self.shared.dep.params
        for n, choice in enumerate(choices):
            k = n % 2
            r = self.jobs_[job].replicas[k]
            late = choice == 9 or (r.state == S.ResultsChecked and choice == 7)  # mediators are often slow
            twice = choice == 8
            phase = {
                S.DealNegotiating: ("agree", p.deadline_agree, "client"),
                S.DealAgreed: ("submit", p.deadline_submit, "client"),
                S.ResultsSubmitted: ("judge", p.deadline_judge, "node"),
                S.ResultsChecked: ("mediate", p.deadline_mediate, "client"),
            }.get(r.state)
            if phase is None:
                self.wait(choice * 2)
            elif late and (r.state != S.DealAgreed or not r.committed):
                self.wait(phase[1] + 1)
                self.timeout(job, k, phase[0], phase[2])
            elif r.state == S.DealNegotiating:
                missing = [x for x in ("client", "node") if getattr(r.terms, x) not in r.agreed]
                self.agree(job, k, missing[choice % len(missing)])
            elif r.state == S.DealAgreed and twice:
                self.commit(job, k, stranger=False) if r.committed else self.reveal(job, k, bad_salt=False)
            elif r.state == S.DealAgreed:
                self.reveal(job, k, bad_salt=late) if r.committed else self.commit(job, k, stranger=False)
            elif r.state == S.ResultsSubmitted:
                self.judge(job, k, check=choice > 2, rank=rank)
            else:
                self.mediate(job, k, accept=(r.result == CORRECT) != twice, who=r.mediator)

    @rule(blocks=st.integers(1, 16))
    def wait(self, blocks: int) -> None:
        if blocks:
            self.shared.chain.mine(blocks)

    # ---------------------------------------------------------------- invariants

    def replicas(self) -> list[Replica]:
        return [r for j in self.jobs_ for r in j.replicas]

    @precondition(lambda self: any(r.exists for r in self.replicas()))
    @invariant()
    def escrows_match_the_model(self) -> None:
        s = self.shared
        reps = self.replicas()
        assert s.dep.read_many("escrowOf", [(s.dep.deal_id(r.terms),) for r in reps]) == [r.escrow for r in reps]

    @invariant()
    def contract_holds_what_it_owes(self) -> None:
        s = self.shared
        owners = [*s.who, DEAD, s.dep.protocol]
        owed = sum(s.dep.read_many("balanceOf", [(a,) for a in owners])) + sum(r.escrow for r in self.replicas())
        assert int(s.dep.token.functions.balanceOf(s.dep.deals.address).call()) == owed

    @precondition(lambda self: any(r.state not in TRANSITIONS for r in self.replicas()))
    @invariant()
    def settled_deals_transfer_like_the_twin(self) -> None:
        s = self.shared
        h = fetch(s.dep, self.start_block)
        if h.honest:
            ReplicationMachine.seen.add("HonestReplicaPaid")
        chain = by_deal(transfers(h, s.book))
        for j in self.jobs_:
            for k, r in enumerate(j.replicas):
                if r.state not in TRANSITIONS:
                    assert chain.get(r.terms.nonce, []) == twin_settlement(s.stack, j, k), DealState(r.state).name


@pytest.mark.slow
def test_replication_and_model_agree_over_random_sequences(
    shared: Shared, record_property: pytest.RecordProperty
) -> None:
    run_machine(ReplicationMachine, shared, examples(), 14)
    record_property("sequences", ReplicationMachine.sequences)
    terminal = {st.name for st in DealState if st not in TRANSITIONS}
    errors = {
        "NotParty",
        "WrongState",
        "AlreadyCommitted",
        "CommitClosed",
        "RevealNotOpen",
        "BadReveal",
        "NotCommitted",
    }
    want = terminal | errors | {"DeadlinePassed", "HonestReplicaPaid"}
    assert want <= ReplicationMachine.seen, sorted(want - ReplicationMachine.seen)


def examples() -> int:
    return int(os.environ.get("STATEFUL_REPLICATION_EXAMPLES", 150))
