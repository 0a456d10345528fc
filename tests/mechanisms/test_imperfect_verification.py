"""Imperfect verification: mediation misses wrong results at 1 - detection and rejects correct ones at the false
rejection rate (non-deterministic modules at their own rate); bought votes are untouched; off, every verdict is
right."""

from __future__ import annotations

import numpy as np
import pytest

from mechanisms import MechanismStack
from mechanisms.config import ConfigError
from mechanisms.protocol import DealState

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
