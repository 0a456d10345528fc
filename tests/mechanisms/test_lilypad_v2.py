"""Lilypad v2 settlement with exact integers: one test per terminal path, every slash destination, config errors.

Every deal here is built by hand (decision columns and final state set explicitly), settled by the mechanism's
hooks and applied to a `sim.ledger.Ledger`. Expected balance changes are computed by hand from the terms below:

    price 10 x instructions 3      -> job cost J = 30            compute cost K = 12
    payment_collateral_bps 15_000  -> payment collateral PC = 45 (refund on payment: PC - J = 15)
    results_multiplier_bps 20_000  -> results collateral RC = 60
    submit_timeout_collateral SC = 7, judge_timeout_collateral JC = 5, mediation_fee F = 20

Accounts: client 0, node 1, mediators 2 and 3 (mediator index 0 and 1), pools from 4 (burn, protocol, compute,
jackpot). Every agent starts with 1000 and every pool with 0.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

import mechanisms.lilypad_v2 as lilypad
from mechanisms import ConfigError, MarketFacts, MechanismStack
from mechanisms.deals import FIRST_OWN_FAKE, NEVER, NO_MEDIATOR, DealBatch
from mechanisms.protocol import DealState, Direction, Reason, Step
from mechanisms.transfers import Transfers
from sim.ledger import Ledger
from sim.lifecycle import resolve

NAMES = ("client", "node", "mediator0", "mediator1", "burn", "protocol", "compute", "jackpot")
START = np.array([1000, 1000, 1000, 1000, 0, 0, 0, 0], dtype=np.int64)
TERMS = {
    "results_multiplier_bps": 20_000,
    "payment_collateral_bps": 15_000,
    "submit_timeout_collateral": 7,
    "judge_timeout_collateral": 5,
    "mediation_fee": 20,
}
SLASH_TO = ("burn", "counterparty", "mediator", "protocol")


def mechanism(**overrides: Any) -> MechanismStack:
    """A stack of Lilypad v2 alone with the terms above (validated like a run's config), overridden where asked."""
    return MechanismStack.from_config([{"name": "lilypad_v2", **TERMS, **overrides}])


def deal(mech: MechanismStack, n: int = 1, thresholds: tuple[int, int] = (NEVER, NEVER), **columns: Any) -> DealBatch:
    """`n` identical deals (client 0, node 1, job cost 30, compute cost 12), terms set by `mech`, then `columns`.

    A cheating node (``cheated=True``) posts its own fake result.
    """
    deals = DealBatch(
        deal_id=np.arange(n, dtype=np.int64),
        client=np.zeros(n, dtype=np.int64),
        node=np.ones(n, dtype=np.int64),
        job=np.arange(n, dtype=np.int64),
        module=np.zeros(n, dtype=np.int64),
        price=np.full(n, 10),
        instructions=np.full(n, 3),
        job_cost=np.full(n, 30),
        compute_cost=np.full(n, 12),
        mutual_mediators=np.full(n, 0b11),
        mediator_accounts=np.array([2, 3]),
        mediator_threshold=np.array(thresholds, dtype=np.int64),
        pool_base=4,
    )
    mech.set_terms(deals)
    for name, value in columns.items():
        dtype = bool if getattr(deals, name).dtype == bool else np.int64
        setattr(deals, name, np.full(n, value, dtype=dtype))
    fake_results(deals)
    return deals


def fake_results(deals: DealBatch) -> None:
    """Cheating nodes post a fake (each its own); honest ones the correct result."""
    deals.result = np.where(deals.cheated, FIRST_OWN_FAKE + deals.deal_id, 0)


@dataclasses.dataclass
class Settled:
    ledger: Ledger
    transfers: Transfers

    def delta(self) -> dict[str, int]:
        """Nonzero balance changes by account name."""
        return {NAMES[i]: int(d) for i, d in enumerate(self.ledger.balance - START) if d != 0}

    def moves(self, direction: Direction) -> list[tuple[str, str, str, int]]:
        """(payer, payee or '-', reason, amount) of every transfer in `direction`, sorted."""
        t = self.transfers
        sel = t.direction == direction
        return sorted(
            (NAMES[p], NAMES[q] if q >= 0 else "-", Reason(r).name, int(a))
            for p, q, r, a in zip(t.payer[sel], t.payee[sel], t.reason[sel], t.amount[sel], strict=True)
        )


def settle(mech: MechanismStack, deals: DealBatch, *states: str) -> Settled:
    """Set the final states by hand (one per deal, or one for all), settle, apply to a fresh ledger.

    The hand-set decisions must lead to the hand-set states (checked with the lifecycle's walk), every escrow must
    be empty afterwards, no balance negative and the total unchanged.
    """
    expected = list(states) * len(deals) if len(states) == 1 else list(states)
    replay = dataclasses.replace(deals)
    resolve(replay)
    assert [DealState(s).name for s in replay.state] == expected, "decisions and hand-set state disagree"
    deals.state = np.array([int(DealState[s]) for s in expected], dtype=np.int64)
    transfers = mech.settle(deals)
    assert (np.diff(transfers.step) >= 0).all() and set(transfers.step.tolist()) <= {int(s) for s in Step}
    ledger = Ledger(START)
    ledger.apply(transfers)
    assert (ledger.escrow == 0).all(), f"escrow left: {ledger.escrow}"
    assert (ledger.balance >= 0).all()
    assert ledger.total() == int(START.sum())
    return Settled(ledger, transfers)


AGREED = {"client_agreed": True, "node_agreed": True}
SUBMITTED = {**AGREED, "submitted": True}
CHECKED = {**SUBMITTED, "judged": True, "checked": True, "mediator": 1}
MEDIATED = {**CHECKED, "mediated": True}


def slash_dest(slash_to: str, slashed: str) -> str:
    """Where value slashed from `slashed` goes; mediator 1 is the mediator when there is one (else protocol)."""
    return {
        "burn": "burn",
        "protocol": "protocol",
        "mediator": "mediator1",
        "counterparty": "node" if slashed == "client" else "client",
    }[slash_to]


def merge(*deltas: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in deltas:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return {k: v for k, v in out.items() if v != 0}


# ----------------------------------------------------------------------------------------------- terms


def test_terms_at_agreement() -> None:
    d = deal(mechanism())
    terms = (d.payment_collateral, d.results_collateral, d.submit_collateral, d.judge_collateral, d.mediation_fee)
    assert [int(t[0]) for t in terms] == [45, 60, 7, 5, 20]
    deadlines = (d.deadline_agree, d.deadline_submit, d.deadline_judge, d.deadline_mediate)
    assert [int(t[0]) for t in deadlines] == [10, 60, 30, 60]
    assert d.client_exposure.tolist() == [45 + 5 + 20]
    assert d.node_exposure.tolist() == [7 + 60 + 12]


def test_terms_round_down_in_base_units() -> None:
    d = deal(mechanism(payment_collateral_bps=12_345, results_multiplier_bps=33_333))
    # 30 x 1.2345 = 37.035 -> 37 ; 30 x 3.3333 = 99.999 -> 99
    assert (int(d.payment_collateral[0]), int(d.results_collateral[0])) == (37, 99)


# ----------------------------------------------------------------------------------------------- timeouts


def test_timeout_agree_client_only_refunds_client() -> None:
    s = settle(mechanism(), deal(mechanism(), client_agreed=True), "TimeoutAgree")
    assert s.moves(Direction.PaidIn) == [
        ("client", "-", "JudgeTimeoutCollateral", 5),
        ("client", "-", "PaymentCollateral", 45),
    ]
    assert s.moves(Direction.Refunded) == [
        ("client", "-", "JudgeTimeoutCollateral", 5),
        ("client", "-", "PaymentCollateral", 45),
    ]
    assert s.moves(Direction.Slashed) == []
    assert s.delta() == {}


def test_timeout_agree_node_only_refunds_node() -> None:
    s = settle(mechanism(), deal(mechanism(), node_agreed=True), "TimeoutAgree")
    assert s.moves(Direction.PaidIn) == [("node", "-", "SubmitTimeoutCollateral", 7)]
    assert s.moves(Direction.Refunded) == [("node", "-", "SubmitTimeoutCollateral", 7)]
    assert s.moves(Direction.Slashed) == []
    assert s.delta() == {}


def test_timeout_agree_neither_moves_nothing() -> None:
    s = settle(mechanism(), deal(mechanism()), "TimeoutAgree")
    assert len(s.transfers) == 0
    assert s.delta() == {}


@pytest.mark.parametrize("slash_to", SLASH_TO)
def test_timeout_submit_results_slashes_node(slash_to: str) -> None:
    mech = mechanism(slash_to=slash_to)
    s = settle(mech, deal(mech, **AGREED), "TimeoutSubmitResults")
    dest = "protocol" if slash_to == "mediator" else slash_dest(slash_to, "node")  # no mediator on this path
    assert s.moves(Direction.Slashed) == [("node", dest, "SubmitTimeoutCollateral", 7)]
    assert s.moves(Direction.Refunded) == [
        ("client", "-", "JudgeTimeoutCollateral", 5),
        ("client", "-", "PaymentCollateral", 45),
    ]
    assert s.moves(Direction.PaidOut) == []
    assert s.delta() == merge({"node": -7}, {dest: 7})


@pytest.mark.parametrize("slash_to", SLASH_TO)
def test_timeout_judge_results_pays_node_and_slashes_client(slash_to: str) -> None:
    mech = mechanism(slash_to=slash_to)
    s = settle(mech, deal(mech, **SUBMITTED), "TimeoutJudgeResults")
    dest = "protocol" if slash_to == "mediator" else slash_dest(slash_to, "client")
    assert s.moves(Direction.Slashed) == [("client", dest, "JudgeTimeoutCollateral", 5)]
    assert s.moves(Direction.PaidOut) == [("client", "node", "JobPayment", 30)]
    assert s.moves(Direction.Refunded) == [
        ("client", "-", "PaymentCollateral", 15),
        ("node", "-", "ResultsCollateral", 60),
        ("node", "-", "SubmitTimeoutCollateral", 7),
    ]
    # client: -30 paid -5 slashed; node: +30 paid -12 compute
    assert s.delta() == merge({"client": -35, "node": 18, "compute": 12}, {dest: 5})


def test_timeout_judge_results_with_fake_result_still_pays() -> None:
    s = settle(mechanism(), deal(mechanism(), **SUBMITTED, cheated=True), "TimeoutJudgeResults")
    assert s.delta() == {"client": -35, "node": 30, "burn": 5}


@pytest.mark.parametrize("cheated", [False, True])
def test_timeout_mediate_results_refunds_everyone(cheated: bool) -> None:
    mech = mechanism()
    s = settle(mech, deal(mech, **CHECKED, cheated=cheated), "TimeoutMediateResults")
    assert s.moves(Direction.Slashed) == []
    assert s.moves(Direction.PaidOut) == []
    assert s.moves(Direction.Refunded) == [
        ("client", "-", "JudgeTimeoutCollateral", 5),
        ("client", "-", "MediationFee", 20),
        ("client", "-", "PaymentCollateral", 45),
        ("node", "-", "ResultsCollateral", 60),
        ("node", "-", "SubmitTimeoutCollateral", 7),
    ]
    # the node is not paid; an honest one has spent the compute cost
    assert s.delta() == ({} if cheated else {"node": -12, "compute": 12})


# ----------------------------------------------------------------------------------------------- judged paths


@pytest.mark.parametrize(
    ("cheated", "expected"), [(False, {"client": -30, "node": 18, "compute": 12}), (True, {"client": -30, "node": 30})]
)
def test_results_accepted(cheated: bool, expected: dict[str, int]) -> None:
    mech = mechanism()
    s = settle(mech, deal(mech, **SUBMITTED, judged=True, cheated=cheated), "ResultsAccepted")
    assert s.moves(Direction.Slashed) == []
    assert s.moves(Direction.PaidOut) == [("client", "node", "JobPayment", 30)]
    assert s.moves(Direction.Refunded) == [
        ("client", "-", "JudgeTimeoutCollateral", 5),
        ("client", "-", "PaymentCollateral", 15),
        ("node", "-", "ResultsCollateral", 60),
        ("node", "-", "SubmitTimeoutCollateral", 7),
    ]
    assert s.delta() == expected


def test_mediation_accepted_honest_result() -> None:
    mech = mechanism()
    d = deal(mech, **MEDIATED)
    mech.judge(d)
    assert d.verdict_accept.tolist() == [True] and d.bribe_accepted.tolist() == [False]
    s = settle(mech, d, "MediationAccepted")
    assert s.moves(Direction.PaidOut) == [
        ("client", "mediator1", "MediationFee", 20),
        ("client", "node", "JobPayment", 30),
    ]
    assert s.moves(Direction.Slashed) == []
    # mediator: +20 fee -12 re-run; compute pool: node's and mediator's runs
    assert s.delta() == {"client": -50, "node": 18, "mediator1": 8, "compute": 24}


@pytest.mark.parametrize("slash_to", SLASH_TO)
@pytest.mark.parametrize("forfeit", [True, False])
def test_mediation_rejected_fake_result(slash_to: str, forfeit: bool) -> None:
    mech = mechanism(slash_to=slash_to, forfeit_payment=forfeit)
    d = deal(mech, **MEDIATED, cheated=True)
    mech.judge(d)
    assert d.verdict_accept.tolist() == [False]
    s = settle(mech, d, "MediationRejected")
    dest = slash_dest(slash_to, "node")
    assert s.moves(Direction.Slashed) == [("node", dest, "ResultsCollateral", 60)]
    assert s.moves(Direction.PaidOut) == [("client", "mediator1", "MediationFee", 20)] + (
        [] if forfeit else [("client", "node", "JobPayment", 30)]
    )
    paid = 0 if forfeit else 30
    assert s.delta() == merge({"client": -20 - paid, "node": -60 + paid, "mediator1": 8, "compute": 12}, {dest: 60})


# ----------------------------------------------------------------------------------------------- bribes


def test_bribe_accepted_buys_an_accepting_verdict() -> None:
    mech = mechanism()
    d = deal(mech, thresholds=(NEVER, 25), **MEDIATED, cheated=True, bribe=25)
    mech.judge(d)
    assert d.bribe_accepted.tolist() == [True] and d.verdict_accept.tolist() == [True]
    s = settle(mech, d, "MediationAccepted")
    assert s.moves(Direction.Spent) == [("node", "mediator1", "Bribe", 25)]  # no re-run, no compute
    # node: +30 paid -25 bribe; mediator: +20 fee +25 bribe
    assert s.delta() == {"client": -50, "node": 5, "mediator1": 45}


@pytest.mark.parametrize(
    ("bribe", "mediator", "cheated", "state"),
    [
        (24, 1, True, "MediationRejected"),  # one short of the threshold
        (25, 0, True, "MediationRejected"),  # an incorruptible mediator
        (0, 1, True, "MediationRejected"),  # no bribe offered
        (25, 1, False, "MediationAccepted"),  # an honest result needs no bribe and pays none
    ],
)
def test_bribe_refused(bribe: int, mediator: int, cheated: bool, state: str) -> None:
    mech = mechanism()
    d = deal(mech, thresholds=(NEVER, 25), **{**MEDIATED, "mediator": mediator}, cheated=cheated, bribe=bribe)
    mech.judge(d)
    assert d.bribe_accepted.tolist() == [False]
    s = settle(mech, d, state)
    med = NAMES[2 + mediator]
    runs = [(med, "compute", "ComputeCost", 12)] + ([] if cheated else [("node", "compute", "ComputeCost", 12)])
    assert s.moves(Direction.Spent) == sorted(runs)  # the mediator re-runs; no bribe changes hands
    expected = (
        {"client": -20, "node": -60, med: 8, "compute": 12, "burn": 60}
        if cheated
        else {"client": -50, "node": 18, med: 8, "compute": 24}
    )
    assert s.delta() == expected


# ----------------------------------------------------------------------------------------------- checks, mediators


def test_choose_checks_uses_committed_rate() -> None:
    mech = mechanism()
    d = deal(mech, n=5, **SUBMITTED)
    d.judged = np.array([True, True, True, True, False])
    d.check_rate = np.array([0.5, 0.5, 0.0, 1.0, 1.0])
    d.extra["u"] = np.array([[0.49, 0], [0.5, 0], [0.0, 0], [0.999, 0], [0.0, 0]])
    mech.choose_checks(d)
    assert d.checked.tolist() == [True, False, False, True, False]


def test_select_mediators_uniform_over_mutual_set() -> None:
    mech = mechanism()
    d = deal(mech, n=5, **SUBMITTED)
    d.mediator_accounts = np.array([10, 11, 12, 13])
    d.mutual_mediators = np.array([0b1011] * 4 + [0b0100])  # mediators {0, 1, 3}; the last deal {2}
    d.checked = np.array([True, True, True, True, True])
    d.extra["u"] = np.array([[0, 0.0], [0, 0.34], [0, 0.67], [0, 0.999], [0, 0.5]])
    mech.select_mediators(d)
    assert d.mediator.tolist() == [0, 1, 3, 3, 2]  # floor(u x 3)-th member; the only member
    assert d.mediator_account().tolist() == [10, 11, 13, 13, 12]
    d.checked[1] = False
    mech.select_mediators(d)
    assert d.mediator[1] == NO_MEDIATOR and d.mediator_account()[1] == NO_MEDIATOR


# ----------------------------------------------------------------------------------------------- a whole batch


def test_batch_settles_like_its_rows() -> None:
    """Seven deals on seven paths in one batch: the ledger moves by the sum of the per-path hand results."""
    mech = mechanism(slash_to="counterparty")
    rows = [  # (decisions, state, hand-computed delta with slash_to=counterparty)
        ({"client_agreed": True}, "TimeoutAgree", {}),
        (AGREED, "TimeoutSubmitResults", {"node": -7, "client": 7}),
        (SUBMITTED, "TimeoutJudgeResults", {"client": -35, "node": 23, "compute": 12}),
        ({**SUBMITTED, "judged": True}, "ResultsAccepted", {"client": -30, "node": 18, "compute": 12}),
        (CHECKED, "TimeoutMediateResults", {"node": -12, "compute": 12}),
        (MEDIATED, "MediationAccepted", {"client": -50, "node": 18, "mediator1": 8, "compute": 24}),
        (
            {**MEDIATED, "cheated": True},
            "MediationRejected",
            {"client": 40, "node": -60, "mediator1": 8, "compute": 12},
        ),
    ]
    batch = deal(mech, n=len(rows))
    for i, (decisions, _, _) in enumerate(rows):
        for name, value in decisions.items():
            getattr(batch, name)[i] = value
    fake_results(batch)
    mech.judge(batch)
    s = settle(mech, batch, *(state for _, state, _ in rows))
    assert s.delta() == merge(*(delta for _, _, delta in rows))


# ----------------------------------------------------------------------------------------------- config errors


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("results_multiplier_bps", -1),
        ("results_multiplier_bps", True),
        ("payment_collateral_bps", 9_999),  # the client must escrow at least the job cost
        ("submit_timeout_collateral", -1),
        ("judge_timeout_collateral", 2.5),
        ("mediation_fee", -6),
        ("deadline_agree", 0),
        ("deadline_mediate", "soon"),
        ("slash_to", "nowhere"),
        ("forfeit_payment", "yes"),
    ],
)
def test_config_errors_name_the_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=rf"mechanism\.stack\[0\]\.{field}="):
        MechanismStack.from_config([{"name": "lilypad_v2", field: value}])


def test_unknown_field_and_unknown_mechanism_are_errors() -> None:
    with pytest.raises(ConfigError, match="multiplier"):
        MechanismStack.from_config([{"name": "lilypad_v2", "multiplier": 2}])
    with pytest.raises(ConfigError, match=r"mechanism\.stack\[1\]\.name"):
        MechanismStack.from_config([{"name": "lilypad_v2"}, {"name": "lilypad_v3"}])
    with pytest.raises(ConfigError, match=r"mechanism\.stack\[0\]\.enabled"):
        MechanismStack.from_config([{"name": "lilypad_v2", "enabled": "no"}])
    with pytest.raises(ConfigError, match=r"mechanism\.stack=\[\]"):
        MechanismStack.from_config([])


def test_mediation_fee_must_cover_the_largest_rerun() -> None:
    stack = MechanismStack.from_config([{"name": "lilypad_v2", "mediation_fee": 60}])
    stack.validate(MarketFacts(n_mediators=2, max_compute_cost=60, max_job_cost=100))  # equal is enough
    with pytest.raises(ConfigError, match=r"mechanism\.stack\[0\]\.mediation_fee=60 .*\(61\)"):
        stack.validate(MarketFacts(n_mediators=2, max_compute_cost=61, max_job_cost=100))


def test_engine_rejects_a_fee_below_the_markets_rerun_cost(make_engine: Any) -> None:
    market = {
        "n_clients": 2,
        "n_nodes": 2,
        "n_mediators": 1,
        "modules": [{"name": "a", "compute_cost": 5}, {"name": "b", "compute_cost": 61}],
    }
    with pytest.raises(ConfigError, match=r"mediation_fee=60"):
        make_engine(market, {"mediation_fee": 60}, {}, seed=0)
    engine, _ = make_engine(market, {"mediation_fee": 61}, {}, seed=0)
    assert engine.market.facts.max_compute_cost == 61


def test_a_fee_below_the_rerun_cost_is_a_mediator_loss_only_when_allowed(stack_run) -> None:
    """Fee 2 for re-runs costing 6: refused unless fee_covers_rerun is false; then every honest mediation costs the
    mediator 4 (its ledger shows it), and mediators too poor for their worst round do not answer."""
    market = {"modules": [{"name": "cowsay", "compute_cost": 6}], "mediator_balance": 100_000}
    pop = {"nodes": [{"strategy": "cheater", "rate": 0.5}], "clients": [{"strategy": "checker", "q": 1.0}]}
    with pytest.raises(ConfigError, match="fee_covers_rerun"):
        stack_run({"order": ["lilypad_v2"], "lilypad_v2": {"mediation_fee": 2}}, pop, market=market)
    out = stack_run(
        {"order": ["lilypad_v2"], "lilypad_v2": {"mediation_fee": 2, "fee_covers_rerun": False}},
        pop,
        market=market,
        rounds=2,
    )
    judged = [DealState.MediationAccepted, DealState.MediationRejected]
    mediated = sum(int(np.isin(r.deals.state, judged).sum()) for r in out.results)
    meds = out.engine.market.facts.first_mediator + np.arange(out.engine.market.config.n_mediators)
    assert mediated > 0
    assert int(out.balance(meds).sum()) == len(meds) * 100_000 - 4 * mediated
    poor = stack_run(
        {"order": ["lilypad_v2"], "lilypad_v2": {"mediation_fee": 2, "fee_covers_rerun": False}},
        pop,
        market={**market, "mediator_balance": 100},
        rounds=2,
    )
    assert poor.count(DealState.TimeoutMediateResults) > 0 and poor.count(DealState.MediationRejected) == 0


@pytest.mark.parametrize("width", [1, 4, 7, 10, 12])
def test_nth_set_bit_table_matches_the_scan(width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lookup table (small widths) and the bit-by-bit scan give the same mediator, -1 past the last set bit."""
    rng = np.random.default_rng(width)
    mask, n = rng.integers(0, 1 << width, size=3000), rng.integers(0, width + 3, size=3000)
    fast = lilypad.nth_set_bit(mask, n, width)
    monkeypatch.setattr(lilypad, "TABLE_WIDTH", -1)
    np.testing.assert_array_equal(fast, lilypad.nth_set_bit(mask, n, width))
    past = n >= np.bitwise_count(mask.astype(np.uint64))
    assert past.any() and (fast[past] == -1).all()
