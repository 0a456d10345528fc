"""The batch engine against the Mesa reference model: same market, same draws, same money to the last unit.

Each case runs both for several rounds on one `RoundDraws` per round and compares, round by round: every deal
(id, parties, mediator, final state, cheat flag, amount moved per reason), every transfer in order, and every
account's balance and escrow, and the public record's counters. The cases between them reach every terminal
state, every slash destination, both price modes, allowlists, trust profiles, bribes, collusion (cartel fakes,
false accusations), whitewashing, timeouts, forfeit on and off, agents too poor to agree, and the other mechanisms
stacked on Lilypad v2 (consortium panels with escalation, replication, whistleblowing, check policies, retention,
collateral, staking, reputation, jackpots).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pytest

from agents.population import Population
from mechanisms import MechanismStack, registered
from mechanisms.actions import Actions
from mechanisms.deals import CARTEL_FAKE, CORRECT, FIRST_OWN_FAKE, FORCED_FAKE, DealBatch
from mechanisms.protocol import TERMINAL, DealState, Direction, Reason, Step
from mechanisms.transfers import COLUMNS, Transfers
from sim.draws import DrawSource
from sim.engine import BatchEngine
from sim.ledger import InsolventTransfer
from sim.market import MachineSpec, MarketConfig, ModuleSpec, ResponseTimes
from sim.reference import ReferenceModel, outcomes_of
from twin import build as builder

S = DealState

CHEATERS = {
    "nodes": [{"strategy": "honest"}, {"strategy": "cheater", "rate": 0.8, "bribe": 30}],
    "clients": [{"strategy": "checker", "q": 0.4}, {"strategy": "never_check", "share": 0.5}],
    "mediators": [{"strategy": "honest"}, {"strategy": "bribable", "threshold": 10}],
}
LATE = ResponseTimes(client_agree=4, node_agree=4, node_submit=25, client_judge=12, mediator=25)


def cartel(actions: Actions, round_index: int) -> None:
    """Collusion set by hand (no scripted strategy colludes yet): every third node and the first mediator in a
    cartel, every fourth client falsely accusing, every fifth node taking a fresh identity in odd rounds."""
    actions.nodes.collude[::3] = True
    actions.mediators.collude[0] = True
    actions.clients.accuse[::4] = True
    actions.nodes.whitewash[::5] = round_index % 2 == 1


def traitors(actions: Actions, round_index: int) -> None:
    """The cartel, with every other cartel node and the first mediator ready to prove what it took part in."""
    cartel(actions, round_index)
    actions.nodes.report[::6] = True
    actions.mediators.report[0] = True


@dataclass(frozen=True)
class Case:
    seed: int
    market: MarketConfig
    stack: dict[str, Any] = field(default_factory=dict)  # lilypad_v2 parameters
    more: tuple[dict[str, Any], ...] = ()  # further mechanisms, after lilypad_v2
    agents: dict[str, Any] = field(default_factory=lambda: CHEATERS)
    rounds: int = 5
    tweak: Callable[[Actions, int], None] | None = None  # edits the population's actions each round
    states: frozenset[DealState] = frozenset()  # terminal states the case must reach (so the comparison bites)
    results: frozenset[tuple[DealState, int]] = frozenset()  # (state, result kind) pairs it must reach


def result_kind(result: int) -> int:
    """CORRECT, CARTEL_FAKE, FORCED_FAKE, or FIRST_OWN_FAKE for any independent fake."""
    return min(result, FIRST_OWN_FAKE)


CASES = {
    "baseline": Case(
        seed=1,
        market=MarketConfig(n_clients=40, n_nodes=40, n_mediators=5),
        states=frozenset({S.ResultsAccepted, S.MediationAccepted, S.MediationRejected}),
    ),
    "timeouts_counterparty_allowlists": Case(
        seed=2,
        market=MarketConfig(
            n_clients=50,
            n_nodes=45,
            n_mediators=4,
            fixed_price_share=0.0,
            allowlists=(("cowsay",), (), ("sdxl",)),
            response=LATE,
        ),
        stack={"slash_to": "counterparty"},
        rounds=6,
        states=TERMINAL,
    ),
    "trust_profiles_mediator_no_forfeit": Case(
        seed=3,
        market=MarketConfig(
            n_clients=40,
            n_nodes=40,
            n_mediators=6,
            trust_profiles=((0, 1), (2, 3), (1, 2, 5), ()),
            client_activity=0.7,
            node_activity=0.8,
            response=ResponseTimes(client_judge=10, mediator=30),
        ),
        stack={"slash_to": "mediator", "forfeit_payment": False},
        agents={
            "nodes": [{"strategy": "cheater", "rate": 1.0, "bribe": 25}, {"strategy": "cheater", "rate": 0.5}],
            "clients": [{"strategy": "checker", "q": 0.6}],
            "mediators": [{"strategy": "bribable", "threshold": 20}, {"strategy": "bribable", "threshold": 40}],
        },
        states=frozenset({S.MediationAccepted, S.MediationRejected, S.TimeoutJudgeResults, S.TimeoutMediateResults}),
    ),
    "fixed_prices_protocol_three_modules": Case(
        seed=4,
        market=MarketConfig(
            n_clients=45,
            n_nodes=30,
            n_mediators=3,
            fixed_price_share=1.0,
            node_price=(8, 14),
            client_max_price=(6, 12),
            modules=(
                ModuleSpec("cowsay", cpu=500, ram=256, instructions=1, compute_cost=6, weight=3),
                ModuleSpec("sdxl", cpu=4000, gpu=1, vram=16384, ram=16384, instructions=10, compute_cost=60),
                ModuleSpec("llm", cpu=8000, gpu=2, vram=40000, ram=65536, instructions=20, compute_cost=90),
            ),
            machines=(
                MachineSpec("cpu-box", cpu=8000, ram=16384, weight=2),
                MachineSpec("gpu-box", cpu=16000, gpu=1, vram=24576, ram=65536),
                MachineSpec("dual-gpu", cpu=32000, gpu=2, vram=49152, ram=131072),
            ),
            allowlists=((), ("cowsay", "llm")),
            response=ResponseTimes(node_submit=20),
        ),
        stack={
            "slash_to": "protocol",
            "results_multiplier_bps": 15_000,
            "payment_collateral_bps": 12_000,
            "submit_timeout_collateral": 7,
            "judge_timeout_collateral": 3,
            "mediation_fee": 90,
        },
        states=frozenset({S.ResultsAccepted, S.MediationRejected, S.TimeoutSubmitResults}),
    ),
    "poor_agents_excess_supply": Case(
        seed=5,
        market=MarketConfig(
            n_clients=20,
            n_nodes=50,
            n_mediators=5,
            client_balance=400,
            node_balance=150,
            mediator_balance=0,
            trust_profiles=((), (0, 4)),
            response=LATE,
        ),
        stack={"slash_to": "counterparty", "forfeit_payment": False, "results_multiplier_bps": 30_000},
        agents={
            "nodes": [{"strategy": "cheater", "rate": 1.0, "bribe": 60}, {"strategy": "honest"}],
            "clients": [{"strategy": "checker", "q": 0.9}],
            "mediators": [{"strategy": "bribable", "threshold": 50}, {"strategy": "honest"}],
        },
        rounds=8,
        states=frozenset({S.TimeoutAgree, S.MediationAccepted, S.MediationRejected}),
    ),
    "burn_excess_demand": Case(
        seed=6,
        market=MarketConfig(n_clients=60, n_nodes=15, n_mediators=2, node_activity=0.9),
        stack={"slash_to": "burn", "forfeit_payment": False},
        states=frozenset({S.ResultsAccepted, S.MediationRejected}),
    ),
    "cartel_accusations_whitewash": Case(
        seed=7,
        market=MarketConfig(n_clients=40, n_nodes=40, n_mediators=3, trust_profiles=((0, 1), (0, 2), ())),
        agents={
            "nodes": [{"strategy": "cheater", "rate": 0.7}, {"strategy": "honest"}],
            "clients": [{"strategy": "checker", "q": 0.7}],
            "mediators": [{"strategy": "honest"}],
        },
        tweak=cartel,
        states=frozenset({S.ResultsAccepted, S.MediationAccepted, S.MediationRejected}),
        results=frozenset(
            {
                (S.MediationAccepted, CARTEL_FAKE),
                (S.MediationRejected, CORRECT),
                (S.MediationRejected, FIRST_OWN_FAKE),
                (S.MediationAccepted, CORRECT),
            }
        ),
    ),
    "consortium_escalation_loser_pays": Case(
        seed=8,
        market=MarketConfig(
            n_clients=40, n_nodes=40, n_mediators=7, trust_profiles=((), (0, 1, 2, 3, 4), (2, 3, 4, 5, 6))
        ),
        stack={"slash_to": "mediator", "mediation_fee": 240},
        more=(
            {
                "name": "consortium",
                "size": 4,
                "threshold": 3,
                "max_depth": 1,
                "fee_payer": "loser",
                "dissent_to": "payer",
            },
        ),
        agents={
            "nodes": [{"strategy": "honest"}, {"strategy": "cheater", "rate": 0.8, "bribe": 30}],
            "clients": [{"strategy": "checker", "q": 0.6}],
            "mediators": [{"strategy": "honest"}, {"strategy": "bribable", "threshold": 20}],
        },
        tweak=cartel,
        states=frozenset({S.ResultsAccepted, S.MediationAccepted, S.MediationRejected}),
    ),
    "consortium_reputation_anonymous": Case(
        seed=9,
        market=MarketConfig(n_clients=40, n_nodes=40, n_mediators=5, response=LATE),
        stack={"slash_to": "counterparty", "mediation_fee": 300},
        more=(
            {
                "name": "consortium",
                "size": 5,
                "threshold": 4,
                "selection": "reputation",
                "fee_payer": "split",
                "fallback": "reject",
                "anonymous": True,
                "dissent_to": "protocol",
            },
        ),
        agents={
            "nodes": [{"strategy": "honest"}, {"strategy": "cheater", "rate": 1.0, "bribe": 15}],
            "clients": [{"strategy": "checker", "q": 0.5}],
            "mediators": [{"strategy": "bribable", "threshold": 10}, {"strategy": "honest", "share": 2}],
        },
        states=frozenset({S.MediationAccepted, S.MediationRejected, S.TimeoutMediateResults}),
    ),
    "replication_whistleblowing_retention": Case(
        seed=10,
        market=MarketConfig(n_clients=30, n_nodes=70, n_mediators=4, response=ResponseTimes(node_submit=20)),
        more=(
            {"name": "replication", "replicas": 2},
            {"name": "whistleblowing", "reward_bps": 5_000},
            {"name": "check_policy", "mode": "reputation", "q_min": 0.05, "q_max": 0.6},
            {"name": "retention", "window": 40, "storage_cost": 1, "payer": "node"},
        ),
        agents={
            "nodes": [{"strategy": "honest"}, {"strategy": "cheater", "rate": 0.6, "bribe": 25}],
            "clients": [{"strategy": "never_check"}],
            "mediators": [{"strategy": "honest"}, {"strategy": "bribable", "threshold": 20}],
        },
        tweak=traitors,
        states=frozenset({S.ResultsAccepted, S.MediationAccepted, S.MediationRejected, S.TimeoutSubmitResults}),
    ),
    "staking_reputation_collateral": Case(
        seed=11,
        market=MarketConfig(n_clients=40, n_nodes=40, n_mediators=5, n_stakers=60, staker_balance=5_000),
        stack={"slash_to": "protocol"},
        more=(
            {"name": "collateral", "multipliers_bps": (15_000, 30_000), "min_deposit": 5},
            {"name": "staking", "stakes": (500, 1_500), "prefer_stake": True, "slash_to": "client"},
            {"name": "reputation", "min_score_bps": 3_000},
            {"name": "check_policy", "mode": "budget", "budget_bps": 3_000},
        ),
        rounds=6,
        states=frozenset({S.ResultsAccepted, S.MediationAccepted, S.MediationRejected}),
    ),
    # the jackpot is shared among the round's claims in `settle_round`, whatever batches the deals settled in
    "jackpot_forced_errors": Case(
        seed=12,
        market=MarketConfig(n_clients=40, n_nodes=40, n_mediators=5),
        more=({"name": "tax_jackpot", "tax_bps": 2_000, "fraction_bps": 5_000, "forced_error_rate": 0.3},),
        states=frozenset({S.ResultsAccepted, S.MediationAccepted, S.MediationRejected}),
        results=frozenset({(S.MediationRejected, FORCED_FAKE)}),
    ),
    "dispute_costs_imperfect_verification": Case(
        seed=13,
        market=MarketConfig(n_clients=40, n_nodes=40, n_mediators=4, response=LATE),
        stack={"slash_to": "protocol", "mediation_fee": 80},
        more=(
            {
                "name": "dispute_costs",
                "fee_per_instruction": 2,
                "verification_cost": 3,
                "fake_cost": 1,
                "loser_pays": True,
                "client_share_bps": 4_000,
            },
            {
                "name": "imperfect_verification",
                "client_detection": 0.7,
                "detection": 0.6,
                "false_reject": 0.2,
                "nondeterministic_modules": (1,),
                "nd_false_reject": 0.5,
            },
        ),
        agents={
            "nodes": [{"strategy": "honest"}, {"strategy": "cheater", "rate": 0.8, "bribe": 30}],
            "clients": [{"strategy": "checker", "q": 0.7}],
            "mediators": [{"strategy": "honest"}, {"strategy": "bribable", "threshold": 10}],
        },
        states=frozenset({S.MediationAccepted, S.MediationRejected, S.TimeoutMediateResults}),
        results=frozenset({(S.MediationRejected, CORRECT), (S.MediationAccepted, FIRST_OWN_FAKE)}),
    ),
    "collusion_contracts_traitors": Case(
        seed=14,
        market=MarketConfig(n_clients=30, n_nodes=70, n_mediators=3),
        more=(
            {"name": "replication", "replicas": 2, "commit_reveal": True},
            {"name": "dispute_costs", "loser_pays": True},
            {"name": "collusion_contracts", "side_payment": 4, "collusion_deposit": 9, "traitors": True},
            {"name": "tax_jackpot", "tax_bps": 1_000, "forced_error_rate": 0.2, "pay_for": "forced_errors"},
        ),
        agents={
            "nodes": [{"strategy": "honest"}, {"strategy": "cheater", "rate": 1.0}],
            "clients": [{"strategy": "never_check"}],
            "mediators": [{"strategy": "honest"}],
        },
        tweak=traitors,
        states=frozenset({S.ResultsAccepted, S.MediationRejected}),
        results=frozenset({(S.ResultsAccepted, CARTEL_FAKE), (S.MediationRejected, CARTEL_FAKE)}),
    ),
    "verifiers_jackpot": Case(
        seed=16,
        market=MarketConfig(
            n_clients=40, n_nodes=40, n_mediators=3, n_stakers=5, staker_balance=100_000, response=LATE
        ),
        more=(
            {"name": "verifiers", "verifiers": 4, "participation": 0.4, "verification_cost": 3},
            {
                "name": "tax_jackpot",
                "tax_bps": 2_000,
                "mode": "per_claim",
                "fraction_bps": 500,
                "forced_error_rate": 0.2,
                "pay_for": "forced_errors",
                "claimants": "verifiers",
            },
        ),
        agents={
            "nodes": [{"strategy": "honest"}, {"strategy": "cheater", "rate": 0.6, "bribe": 30}],
            "clients": [{"strategy": "never_check"}],
            "mediators": [{"strategy": "honest"}, {"strategy": "bribable", "threshold": 10}],
        },
        states=frozenset({S.ResultsAccepted, S.MediationAccepted, S.MediationRejected}),
        results=frozenset({(S.MediationRejected, FORCED_FAKE), (S.MediationRejected, FIRST_OWN_FAKE)}),
    ),
    "mediator_at_a_loss": Case(
        seed=17,
        market=MarketConfig(n_clients=40, n_nodes=40, n_mediators=4, mediator_balance=20_000, response=LATE),
        stack={"mediation_fee": 20, "fee_covers_rerun": False},
        agents={
            "nodes": [{"strategy": "honest"}, {"strategy": "cheater", "rate": 0.7, "bribe": 30}],
            "clients": [{"strategy": "checker", "q": 0.6}],
            "mediators": [{"strategy": "honest"}, {"strategy": "bribable", "threshold": 10}],
        },
        rounds=6,
        states=frozenset({S.MediationAccepted, S.MediationRejected, S.TimeoutMediateResults}),
    ),
    "replication_settled_once": Case(
        seed=18,
        market=MarketConfig(n_clients=25, n_nodes=80, n_mediators=4, response=LATE),
        stack={"slash_to": "mediator"},
        more=(
            {"name": "replication", "replicas": 3, "commit_reveal": True, "settle_once": True},
            {"name": "dispute_costs", "loser_pays": True},
            {"name": "whistleblowing", "reward_bps": 5_000},
        ),
        agents={
            "nodes": [{"strategy": "honest"}, {"strategy": "cheater", "rate": 0.6, "bribe": 30}],
            "clients": [{"strategy": "checker", "q": 0.3}],
            "mediators": [{"strategy": "honest"}, {"strategy": "bribable", "threshold": 10}],
        },
        tweak=traitors,
        rounds=6,
        states=frozenset({S.MediationAccepted, S.MediationRejected, S.TimeoutMediateResults}),
    ),
    "replication_timing_attack_nondeterministic": Case(
        seed=15,
        market=MarketConfig(n_clients=30, n_nodes=70, n_mediators=3, response=ResponseTimes(node_submit=20)),
        more=(
            {"name": "replication", "replicas": 2, "commit_reveal": False},
            {"name": "imperfect_verification", "nondeterministic_modules": (1,), "nd_false_reject": 0.5},
        ),
        agents={
            "nodes": [
                {"strategy": "honest"},
                {"strategy": "copier", "rate": 1.0},
                {"strategy": "cheater", "rate": 0.5},
            ],
            "clients": [{"strategy": "checker", "q": 0.3}],
            "mediators": [{"strategy": "honest"}],
        },
        states=frozenset({S.ResultsAccepted, S.MediationRejected}),
    ),
}


def build(case: Case) -> tuple[BatchEngine, ReferenceModel, DrawSource, Population]:
    """Both engines on one market, built by `twin.build` from the case's seed; separate stacks from one config, so
    no mechanism state is shared."""
    fast_stack, ref_stack = (
        MechanismStack.from_config([{"name": "lilypad_v2", **case.stack}, *case.more]) for _ in range(2)
    )
    c = case.market
    population = Population.from_config(
        case.agents, {"clients": c.n_clients, "nodes": c.n_nodes, "mediators": c.n_mediators}
    )
    sim = builder.build(builder.ParsedConfig(case.seed, case.market, fast_stack, population))
    return sim.engine, ReferenceModel(sim.market, ref_stack), sim.source, population


def by_deal(t: Transfers) -> Transfers:
    """Transfers (step-major over a round or a job) regrouped deal by deal, keeping each deal's order."""
    order = np.argsort(t.deal_id, kind="stable")
    return Transfers(*(getattr(t, c)[order] for c in COLUMNS))


@pytest.mark.parametrize("name", list(CASES))
def test_reference_matches_batch_engine(name: str) -> None:
    compare(CASES[name])


def test_every_registered_mechanism_has_a_case() -> None:
    """A new mechanism must be compared with the reference too."""
    assert {"lilypad_v2"} | {m["name"] for case in CASES.values() for m in case.more} == set(registered())


def compare(case: Case) -> None:
    """Run both engines on the case's rounds and compare everything after each round."""
    engine, model, source, population = build(case)
    total = engine.ledger.total()
    stakers = np.arange(engine.market.facts.first_staker, engine.market.facts.pool_base)
    seen: set[tuple[DealState, int]] = set()
    for i in range(case.rounds):
        draws, actions = source.next_round(), population.actions(i)
        if case.tweak is not None:
            case.tweak(actions, i)
        fast = engine.step(actions, draws)
        ref = model.step_round(actions, draws)

        assert (ref.posted_jobs, ref.posted_offers) == (fast.posted_jobs, fast.posted_offers)
        assert ref.outcomes == outcomes_of(fast), f"round {i}: deal outcomes differ"
        fast_t, ref_t = by_deal(fast.transfers), by_deal(ref.transfers)
        for col in COLUMNS:
            np.testing.assert_array_equal(getattr(ref_t, col), getattr(fast_t, col), err_msg=col)
        np.testing.assert_array_equal(model.balances(), engine.ledger.balance)
        np.testing.assert_array_equal(model.escrows(), engine.ledger.escrow)
        deal_escrow = np.delete(model.escrows(), stakers)  # stakes stand between rounds (and may be slashed)
        assert not deal_escrow.any(), "every terminal path releases every escrow"
        assert model.total_value() == total
        for name, counts in engine.record.counters.items():
            np.testing.assert_array_equal(model.record.counters[name], counts, err_msg=name)
        seen.update((o.state, result_kind(o.result)) for o in ref.outcomes)

    assert model.steps == case.rounds
    missing = case.states - {state for state, _ in seen}
    assert not missing, f"case never reached {sorted(s.name for s in missing)}"
    assert case.results <= seen, f"case never reached {case.results - seen}"


def test_data_collector_reports_each_round() -> None:
    case = CASES["baseline"]
    engine, model, source, population = build(case)
    outcomes = [model.step_round(population.actions(i), source.next_round()).outcomes for i in range(3)]

    frame = model.datacollector.get_model_vars_dataframe()
    assert len(frame) == 3
    assert (frame["total_value"] == engine.ledger.total()).all()
    assert frame["deals"].tolist() == np.cumsum([len(o) for o in outcomes]).tolist()
    paid = Reason.JobPayment
    fakes = sum(o.cheated and o.amounts[paid] > 0 for round_outcomes in outcomes for o in round_outcomes)
    assert frame["fake_results_accepted"].iloc[-1] == fakes > 0
    agents = model.datacollector.get_agent_vars_dataframe()
    last = agents.xs(3, level="Step")["balance"].to_numpy()
    np.testing.assert_array_equal(last, model.balances()[: case.market.n_agents])


def test_overdraft_is_rejected() -> None:
    """A transfer step that leaves an account negative raises, as the batch ledger does."""
    _, model, _, _ = build(CASES["baseline"])
    too_much = model.clients[0].balance + 1
    t = Transfers(
        *(np.array([v]) for v in (Step.Agree, 0, 0, -1, too_much, Reason.PaymentCollateral, Direction.PaidIn, False))
    )
    with pytest.raises(InsolventTransfer):
        model.apply(t)


def test_concat_inverts_rows() -> None:
    """The round's batch handed to `after_round` is the batch the engine would have built."""
    engine, _, source, population = build(CASES["consortium_escalation_loser_pays"])
    deals = engine.step(population.actions(0), source.next_round()).deals
    joined = DealBatch.concat([deals.row(i) for i in range(len(deals))])
    for f in fields(DealBatch):
        a, b = getattr(joined, f.name), getattr(deals, f.name)
        if f.name == "extra":
            assert a.keys() == b.keys()
            for key in a:
                np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        elif isinstance(b, np.ndarray):
            np.testing.assert_array_equal(a, b, err_msg=f.name)
        else:
            assert a is b, f.name
