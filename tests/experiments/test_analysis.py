"""Incentive metrics: deviation gains against the inspection game, coalition gains, the meta-game, costs, the
analytic threshold, and the strategy library's validation.

The inspection game (tests/sim/test_threshold.py): price 10, compute cost 6, multiplier 2, a caught cheater loses
payment and collateral, so always cheating gains 6 - 30 q per job over honesty and pays iff q < 0.2.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats

from experiments.analysis import configs
from experiments.analysis.analytic import cheat_gain, inspection_game, register_resolver, threshold
from experiments.analysis.assess import assess, parse_study, rank
from experiments.analysis.incentives import IncentiveStudy, SecurityRule, best, security
from experiments.analysis.library import parse_behaviour, parse_coalition, parse_library
from experiments.analysis.metagame import MetagameConfig, alpha_rank, honest_basin, payoff_table
from experiments.analysis.runner import Scenario, run
from mechanisms.config import ConfigError, from_mapping

MARKET = configs.group("market", "threshold")  # 200 clients and nodes, price 10, cost 6, nobody late
BASE = {"order": ["lilypad_v2"], "lilypad_v2": {"mediation_fee": 6}}  # multiplier 2, forfeit, burn (defaults)
SEEDS = (0, 1, 2)


def honest(q: float) -> dict[str, Any]:
    return {
        "nodes": [{"strategy": "honest"}],
        "clients": [{"strategy": "checker", "q": q}],
        "mediators": [{"strategy": "honest"}],
    }


def scenario(q: float, mechanism: dict[str, Any] | None = None, rounds: int = 20) -> Scenario:
    return Scenario(MARKET, mechanism or BASE, honest(q), rounds=rounds)


STUDY = parse_study(
    {
        "rounds": 20,
        "seeds": list(SEEDS),
        "deviator_share": 0.25,
        "library": {
            "node": [{"strategy": "cheater", "rate": 1.0}, {"strategy": "cheater", "rate": 0.5}],
            "client": [{"strategy": "never_check"}],
            "mediator": [{"strategy": "bribable", "threshold": 1}, {"collude": True}],
        },
    }
)


@pytest.mark.parametrize(("q", "equilibrium"), [(0.1, False), (0.4, True)])
def test_deviation_gain_matches_the_inspection_game(q: float, equilibrium: bool) -> None:
    a = assess(scenario(q), STUDY)
    node = best(a.gains, "deviation", "node")
    theory = cheat_gain(q, 10, 6, 2)  # always cheat: +3 at q = 0.1, -6 at q = 0.4
    always = next(g for g in a.gains if g.name == "cheater(rate=1.0, bribe=0)")
    assert always.estimate.lo <= theory <= always.estimate.hi
    # mediators have nothing to gain from bribes or cartels nobody offers: exactly zero on common random numbers
    for g in a.gains:
        if g.role == "mediator":
            assert g.estimate.mean == g.estimate.lo == g.estimate.hi == 0.0
    if equilibrium:
        assert a.security["deviation_gain"] == 0.0 and a.security["secure"]
        assert node.estimate.hi < 0  # every cheat loses, at 95% confidence
    else:
        assert not a.security["secure"]
        assert node.name == "cheater(rate=1.0, bribe=0)" and node.estimate.lo > 0  # the interval decides the sign
        # the reported gain is the best deviation's, and its interval over seeds covers the closed form
        assert a.security["deviation_gain"] == node.estimate.mean
        assert a.security["max_gain_lo"] <= theory <= a.security["max_gain_hi"]
    assert a.row()["node_gain"] == node.estimate.mean


def test_client_shirking_is_reported_but_not_required() -> None:
    """Breaking the check commitment saves the fees when nodes are honest (the verifier's dilemma): reported as
    the client's gain, left out of the default security rule."""
    a = assess(scenario(0.4), STUDY)
    client = best(a.gains, "deviation", "client")
    assert client.estimate.lo > 0 and a.security["secure"]
    assert not security(a.gains, SecurityRule(roles=("node", "client", "mediator")))["secure"]


def test_coalition_gains() -> None:
    inc = IncentiveStudy(scenario(0.4), SEEDS, 0.25)
    accuse = parse_coalition(
        {"name": "accuse", "client": {"share": 0.1, "accuse": True}, "mediator": {"count": 1, "collude": True}}, "c"
    )
    paid = inc.coalition(accuse)
    # a falsely rejected correct result saves the client its payment (forfeit_payment): q / 5 mediators x 10 per job
    assert paid.members == 21 and paid.estimate.lo > 0
    no_forfeit = {"order": ["lilypad_v2"], "lilypad_v2": {"mediation_fee": 6, "forfeit_payment": False}}
    unpaid = IncentiveStudy(scenario(0.4, no_forfeit), SEEDS, 0.25).coalition(accuse)
    assert unpaid.estimate.mean == 0.0  # the node is paid anyway: the lie buys nothing
    # a cartel of mediators and nodes: a fake the drawn cartel mediator judges is accepted
    cartel = parse_coalition(
        {
            "name": "cartel",
            "mediator": {"count": 2, "collude": True},
            "node": {"share": 0.1, "strategy": "cheater", "collude": True},
        },
        "c",
    )
    honest_mediators = parse_coalition(
        {"name": "alone", "node": {"share": 0.1, "strategy": "cheater", "collude": True}}, "c"
    )
    assert inc.coalition(cartel).estimate.mean > inc.coalition(honest_mediators).estimate.mean


def test_node_cartels_under_replication_pay_only_when_they_are_the_market() -> None:
    dong = configs.mechanism("dong_counter_collusion")
    inc = IncentiveStudy(Scenario(MARKET, dong, honest(0.1), rounds=10), (0, 1), 0.25)
    member = {"strategy": "cheater", "rate": 1.0, "collude": True}
    small = inc.coalition(parse_coalition({"name": "20%", "node": {"share": 0.2, **member}}, "c"))
    whole = inc.coalition(parse_coalition({"name": "100%", "node": {"share": 1.0, **member}}, "c"))
    assert small.estimate.hi < 0 < whole.estimate.lo  # replicas outside the cartel expose it


def test_metagame_tables_alpharank_and_basin() -> None:
    mg = from_mapping(
        MetagameConfig,
        {
            "strategies": {"node": [{"name": "honest"}, {"strategy": "cheater"}]},
            "seeds": list(SEEDS),
            "basin_samples": 16,
        },
        "mg",
    )
    t = stats.t.ppf(0.975, len(SEEDS) - 1)
    for q, honest_wins in ((0.4, True), (0.1, False)):
        table = payoff_table(scenario(q), mg.behaviours(), mg.seeds)
        assert table.roles == ("node",) and table.shape == (2,)
        assert table.mean[0, 0] == 4.0 and table.sem[0, 0] == 0.0  # an honest node earns price - cost per job
        # always cheating earns 10 - 30 q per job: inside the 95% interval over seeds of the measured payoff
        mean, half = table.mean[0, 1], t * table.sem[0, 1]
        assert half > 0 and mean - half <= cheat_gain(q, 10, 6, 2) + 4 <= mean + half
        assert not mean - half <= 4 <= mean + half  # and the interval tells cheating from honest work
        assert honest_basin(table, mg).share == (1.0 if honest_wins else 0.0)
    # three populations: alpha-rank is a distribution over all 2 x 2 x 2 profiles
    mg3 = from_mapping(
        MetagameConfig,
        {
            "strategies": {
                "node": [{"name": "honest"}, {"strategy": "cheater", "bribe": 30}],
                "client": [{"name": "committed"}, {"strategy": "never_check"}],
                "mediator": [{"name": "honest"}, {"strategy": "bribable", "threshold": 25}],
            },
            "seeds": [0, 1],
        },
        "mg3",
    )
    table = payoff_table(scenario(0.4, rounds=6), mg3.behaviours(), mg3.seeds)
    ar = alpha_rank(table, mg3.alpha, mg3.population)
    assert len(ar) == 8 and ar["mass"].sum() == pytest.approx(1.0) and (ar["mass"] >= 0).all()
    assert table.frame().shape[0] == 8 and table.subgame({"mediator": [0]}).roles == ("node", "client")


def test_costs_of_the_honest_profile() -> None:
    """Every check is one mediator re-run and one fee of 6; escrows are held for the deadlines they span."""
    cost = run(scenario(0.1), 0).cost
    e = cost["extra_executions_per_job"]
    assert 0.05 < e < 0.15 and cost["fake_accepted_per_job"] == 0
    assert cost["mediation_fees_per_job"] == pytest.approx(6 * e)
    assert cost["client_cost_per_correct_result"] == pytest.approx(10 + 6 * e)
    # client: (payment 10 + judge 5) x (submit 60 + judge 30) and the fee 6 x mediate 60 when checked;
    # node: submit collateral 5 x 60, results collateral 20 x (judge 30 + mediate 60 when checked)
    blocks = 15 * 90 + 5 * 60 + 20 * 30 + e * (15 * 60 + 6 * 60 + 20 * 60)
    assert cost["collateral_blocks_per_job"] == pytest.approx(blocks)
    assert cost["cost_per_correct_result"] == pytest.approx(10 + 6 * e + 1e-4 * blocks)
    replicated = run(Scenario(MARKET, configs.mechanism("dong_counter_collusion"), honest(0.1), rounds=5), 0).cost
    assert replicated["extra_executions_per_job"] >= 1.0  # the second replica of every job


def test_analytic_threshold() -> None:
    assert threshold(10, 6, 2) == pytest.approx(0.2)
    assert threshold(10, 6, 2, forfeit_payment=False) == pytest.approx(0.3)
    assert cheat_gain(0.2, 10, 6, 2) == pytest.approx(0.0) and cheat_gain(0.1, 10, 6, 2, rate=0.5) == pytest.approx(1.5)
    game = inspection_game(scenario(0.15).config(0))
    assert game is not None and game.q == 0.15 and game.threshold == pytest.approx(0.2)
    policy = {
        "order": ["lilypad_v2", "check_policy"],
        "check_policy": {"q": 0.3},
        "lilypad_v2": {"results_multiplier_bps": 40000},
    }
    game = inspection_game(scenario(0.1, policy).config(0))
    assert game.q == 0.3 and game.threshold == pytest.approx(6 / 50)
    # where the model does not hold: replication, a market with several modules and lateness
    assert inspection_game(scenario(0.1, configs.mechanism("dong_counter_collusion")).config(0)) is None
    assert inspection_game({"market": configs.group("market", "default")}) is None


def test_the_threshold_experiment_draws_the_analytic_threshold() -> None:
    """`scan.theory` of +experiment=cheat_threshold is the closed form of the composed market, not a typed number."""
    register_resolver()
    plain = configs.compose_plain("train", ["+experiment=cheat_threshold"])
    assert plain["scan"]["theory"] == threshold(10, 6, 2) == pytest.approx(0.2)
    unforfeited = configs.compose_plain(
        "train", ["+experiment=cheat_threshold", "mechanism.lilypad_v2.forfeit_payment=false"]
    )
    assert unforfeited["scan"]["theory"] == threshold(10, 6, 2, forfeit_payment=False) == pytest.approx(0.3)
    replicated = configs.compose_plain("train", ["+experiment=cheat_threshold", "mechanism=dong_counter_collusion"])
    assert replicated["scan"]["theory"] is None  # no inspection game: no line


def test_library_and_study_validation() -> None:
    b = parse_behaviour({"strategy": "cheater", "rate": 0.5, "collude": True}, "node", "x")
    assert b.name == "cheater(rate=0.5, bribe=0)+collude"
    assert parse_behaviour({"accuse": True}, "client", "x").name == "accuse"
    with pytest.raises(ConfigError, match=r"x\.strategy"):
        parse_behaviour({"strategy": "nope"}, "node", "x")
    with pytest.raises(ConfigError, match=r"x: unknown field\(s\) \['accuse'\]"):
        parse_behaviour({"accuse": True}, "node", "x")
    with pytest.raises(ConfigError, match="unknown role"):
        parse_library({"staker": []}, "lib")
    with pytest.raises(ConfigError, match="exactly one of share"):
        parse_coalition({"name": "c", "node": {"share": 0.1, "count": 2}}, "c")
    with pytest.raises(ConfigError, match=r"study\.seeds"):
        parse_study({"seeds": [0]})


def test_rank_puts_secure_mechanisms_first_then_the_least_exploitable() -> None:
    rows = [
        {"mechanism": "a", "secure": False, "max_gain": 5.0, "cost_per_correct_result": 1.0},
        {"mechanism": "b", "secure": True, "max_gain": 0.0, "cost_per_correct_result": 9.0},
        {"mechanism": "c", "secure": True, "max_gain": -1.0, "cost_per_correct_result": 3.0},
        {"mechanism": "d", "secure": False, "max_gain": 0.5, "cost_per_correct_result": 20.0},
    ]
    assert rank(rows)["mechanism"].tolist() == ["c", "b", "d", "a"]
    assert np.array_equal(rank(rows)["rank"], [1, 2, 3, 4])
