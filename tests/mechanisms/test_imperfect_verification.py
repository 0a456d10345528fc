"""Imperfect verification: a client's check misses wrong results at 1 - client_detection, mediation misses them at
1 - detection and rejects correct ones at the false rejection rate (non-deterministic modules at their own rate);
bought votes are untouched; off, every check disputes and every verdict is right."""

from __future__ import annotations

import numpy as np
import pytest

from mechanisms import MechanismStack
from mechanisms.config import ConfigError
from mechanisms.protocol import DealState, Reason

S = DealState
MARKET = {"n_clients": 400, "n_nodes": 400, "modules": [{"name": "a"}, {"name": "b"}]}
POPULATION = {
    "nodes": [{"strategy": "honest"}, {"strategy": "cheater", "rate": 1.0}],
    "clients": [{"strategy": "checker", "q": 1.0}],
    "mediators": [{"strategy": "honest"}],
}


def stack(enabled: bool = True, **params: object) -> dict:
    return {
        "order": ["lilypad_v2", "imperfect_verification"],
        "lilypad_v2": {},
        "imperfect_verification": {"enabled": enabled, **params},
    }


def verdicts(out) -> dict[str, np.ndarray]:
    """Per mediated deal: whether the result was wrong, its module, and whether mediation accepted it."""
    cols = {"wrong": [], "module": [], "accepted": []}
    for r in out.results:
        d = r.deals
        mediated = np.isin(d.state, [S.MediationAccepted, S.MediationRejected])
        cols["wrong"].append(d.wrong()[mediated])
        cols["module"].append(d.module[mediated])
        cols["accepted"].append((d.state == S.MediationAccepted)[mediated])
    return {k: np.concatenate(v) for k, v in cols.items()}


def test_errors_at_the_configured_rates(stack_run):
    params = {"detection": 0.7, "false_reject": 0.1, "nondeterministic_modules": [1], "nd_false_reject": 0.4}
    v = verdicts(stack_run(stack(**params), POPULATION, market=MARKET, rounds=4))
    missed = v["accepted"][v["wrong"]].mean()
    det_wrong = (~v["accepted"])[~v["wrong"] & (v["module"] == 0)].mean()
    nd_wrong = (~v["accepted"])[~v["wrong"] & (v["module"] == 1)].mean()
    n = len(v["wrong"])
    assert n > 1000
    for measured, rate in ((missed, 0.3), (det_wrong, 0.1), (nd_wrong, 0.4)):
        assert abs(measured - rate) < 4 * np.sqrt(rate * (1 - rate) / (n / 4))


def test_off_every_verdict_is_right(stack_run):
    v = verdicts(stack_run(stack(enabled=False, detection=0.5, false_reject=0.5), POPULATION, market=MARKET))
    assert (v["accepted"] == ~v["wrong"]).all()


def test_bought_votes_stay_bought(stack_run):
    bribing = {
        **POPULATION,
        "nodes": [{"strategy": "cheater", "rate": 1.0, "bribe": 50}],
        "mediators": [{"strategy": "bribable", "threshold": 10}],
    }
    v = verdicts(stack_run(stack(detection=0.0, false_reject=1.0), bribing, market=MARKET, rounds=1))
    assert v["wrong"].all() and v["accepted"].all()


def test_bad_module_list_is_refused():
    with pytest.raises(ConfigError, match="nondeterministic_modules"):
        MechanismStack.from_config([{"name": "imperfect_verification", "nondeterministic_modules": [1, 1]}])
    with pytest.raises(ConfigError, match="detection"):
        MechanismStack.from_config([{"name": "imperfect_verification", "detection": 1.5}])


def test_honest_replicas_of_a_nondeterministic_job_go_to_the_validator(stack_run):
    """Bought as two replicas from honest nodes, a non-deterministic job always goes to mediation (its honest results
    differ bit for bit), where the validator rejects a correct result at nd_false_reject; a deterministic one never
    does; off, nothing is mediated."""
    honest = {"nodes": [{"strategy": "honest"}], "clients": [{"strategy": "never_check"}]}
    market = {"n_clients": 100, "n_nodes": 200, "modules": [{"name": "a"}, {"name": "b"}]}

    def mech(enabled: bool) -> dict:
        return {
            "order": ["lilypad_v2", "replication", "imperfect_verification"],
            "lilypad_v2": {},
            "replication": {"commit_reveal": True},
            "imperfect_verification": {"enabled": enabled, "nondeterministic_modules": [1], "nd_false_reject": 0.3},
        }

    out = stack_run(mech(True), honest, market=market, rounds=3)
    d = [r.deals for r in out.results]
    module, state = np.concatenate([x.module for x in d]), np.concatenate([x.state for x in d])
    mediated = np.isin(state, [S.MediationAccepted, S.MediationRejected])
    assert mediated[module == 1].all() and not mediated[module == 0].any()
    assert 0.15 < (state[module == 1] == S.MediationRejected).mean() < 0.45
    off = stack_run(mech(False), honest, market=market, rounds=3)
    assert off.count(S.MediationAccepted) + off.count(S.MediationRejected) == 0


def client_checks(out) -> dict[str, np.ndarray]:
    """Per judged deal with a wrong result (every client checks): whether it reached mediation and was rejected."""
    cols = {"mediated": [], "rejected": []}
    for r in out.results:
        d = r.deals
        fake = d.judged & d.wrong()
        cols["mediated"].append(np.isin(d.state, [S.MediationAccepted, S.MediationRejected])[fake])
        cols["rejected"].append((d.state == S.MediationRejected)[fake])
    return {k: np.concatenate(v) for k, v in cols.items()}


def test_client_checks_find_fakes_at_client_detection(stack_run):
    """A client's check disputes a fake at client_detection; a disputed fake is then rejected at detection,
    independently (one uniform serves both, rescaled); a missed check is accepted undisputed."""
    c = client_checks(stack_run(stack(client_detection=0.6, detection=0.5), POPULATION, market=MARKET, rounds=4))
    n = len(c["mediated"])
    assert n > 500
    for measured, rate, k in (
        (c["mediated"].mean(), 0.6, n),
        (c["rejected"][c["mediated"]].mean(), 0.5, c["mediated"].sum()),
        (c["rejected"].mean(), 0.3, n),
    ):
        assert abs(measured - rate) < 4 * np.sqrt(rate * (1 - rate) / k), (measured, rate)


def test_client_detection_off_switch(stack_run):
    """Disabled, or at client_detection 1, every checked fake is disputed; at 0 none is, and honest results are
    mediated as before."""
    for params, disputed in (
        ({"enabled": False, "client_detection": 0.0}, True),
        ({"client_detection": 1.0}, True),
        ({"client_detection": 0.0}, False),
    ):
        out = stack_run(stack(**params), POPULATION, market=MARKET, rounds=2)
        assert (client_checks(out)["mediated"] == disputed).all(), params
        honest = np.concatenate([r.deals.judged & ~r.deals.wrong() & r.deals.mediated for r in out.results])
        assert honest.sum() > 100


def test_a_missed_check_still_costs_the_verification(stack_run):
    """With dispute_costs, the client pays its verification cost for every check, also one that missed the fake
    (which is then paid, no fee)."""
    mechanism = {
        "order": ["lilypad_v2", "dispute_costs", "imperfect_verification"],
        "dispute_costs": {"verification_cost": 3},
        "imperfect_verification": {"client_detection": 0.0},
    }
    out = stack_run(mechanism, POPULATION, market=MARKET, rounds=1)
    d, t = out.results[0].deals, out.results[0].transfers
    assert (d.judged & d.wrong()).sum() > 100
    assert not (d.mediated & d.wrong()).any()
    paid = np.zeros(len(d), dtype=np.int64)
    cost = (t.reason == int(Reason.ComputeCost)) & np.isin(t.payer, d.client)
    np.add.at(paid, np.searchsorted(d.deal_id, t.deal_id[cost]), t.amount[cost])
    assert (paid[d.judged] == 3).all()
