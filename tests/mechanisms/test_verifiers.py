"""Truebit-style verifiers: each pays per result verified, a wrong result it found goes to mediation even when the
client never checks, a real error's deposit goes to the first finder, forced errors are claimed from the jackpot by
every finder; switched off, nobody verifies and fakes pass."""

from __future__ import annotations

import pytest

from mechanisms.config import ConfigError
from mechanisms.money import Pool
from mechanisms.protocol import DealState, Direction, Reason

S = DealState
MARKET = {"n_stakers": 4, "staker_balance": 1_000_000, "modules": [{"name": "cowsay"}]}
CHEATERS = {
    "nodes": [{"strategy": "honest"}, {"strategy": "cheater", "rate": 1.0}],
    "clients": [{"strategy": "never_check"}],
}


def stack(enabled: bool = True, jackpot: bool = False, **params: object) -> dict:
    order = ["lilypad_v2", "verifiers", *(["tax_jackpot"] if jackpot else [])]
    mech = {
        "order": order,
        "lilypad_v2": {"slash_to": "burn"},
        "verifiers": {"enabled": enabled, "verifiers": 3, "verification_cost": 2, **params},
    }
    if jackpot:
        mech["tax_jackpot"] = {
            "tax_bps": 2_000,
            "fraction_bps": 10_000,
            "forced_error_rate": 0.1,
            "pay_for": "forced_errors",
            "claimants": "verifiers",
        }
    return mech


def test_verifiers_pay_per_result_and_challenge_every_fake(stack_run):
    out = stack_run(stack(), CHEATERS, market=MARKET)
    first_staker = out.engine.market.facts.first_staker
    for r in out.results:
        d, t = r.deals, r.transfers
        cost = (t.reason == Reason.ComputeCost) & (t.payer >= first_staker) & (t.payer < first_staker + 3)
        assert cost.sum() == 3 * d.submitted.sum() and (t.amount[cost] == 2).all()
        fakes = d.submitted & d.wrong()
        assert fakes.any() and d.checked[fakes].all() and (d.state[fakes] == S.MediationRejected).all()
        slash = (t.direction == Direction.Slashed) & (t.reason == Reason.ResultsCollateral)
        assert (t.payee[slash] == first_staker).all() and slash.sum() == fakes.sum()  # the first finder


def test_off_nobody_verifies_and_fakes_pass(stack_run):
    out = stack_run(stack(enabled=False), CHEATERS, market=MARKET)
    assert out.fake_accepted > 0 and out.count(S.MediationRejected) == 0


def test_partial_participation_and_forced_error_claims(stack_run):
    honest = {"nodes": [{"strategy": "honest"}], "clients": [{"strategy": "never_check"}]}
    out = stack_run(stack(jackpot=True, participation=0.5), honest, market=MARKET, rounds=4)
    first_staker, claims = out.engine.market.facts.first_staker, 0
    for r in out.results[1:]:
        d, t = r.deals, r.transfers
        found = d.extra["verifiers.found"]
        paid = (t.reason == Reason.Jackpot) & (t.payer == d.pool_base + Pool.Jackpot)
        rejected = d.state == S.MediationRejected
        assert (rejected == (d.forced_error & found.any(axis=1))).all()
        assert paid.sum() == found[rejected].sum()  # one claim per verifier that found a forced error
        assert set(t.payee[paid].tolist()) <= set(range(first_staker, first_staker + 3))
        claims += int(paid.sum())
        verified = d.extra["verifiers.verified"]
        assert 0.3 < verified[d.submitted].mean() < 0.7
    assert claims > 0


def test_a_verifier_that_cannot_cover_a_round_verifies_nothing(stack_run):
    poor = {**MARKET, "staker_balance": 10}
    out = stack_run(stack(), CHEATERS, market=poor)
    assert not any(r.deals.extra["verifiers.verified"].any() for r in out.results)
    assert out.fake_accepted > 0


def test_more_verifiers_than_stakers_is_refused(stack_run):
    with pytest.raises(ConfigError, match=r"mechanism\.verifiers\.verifiers=5 is invalid"):
        stack_run(stack(verifiers=5), CHEATERS, market=MARKET)


def test_verifier_claims_without_verifiers_are_refused(stack_run):
    mech = {"order": ["lilypad_v2", "tax_jackpot"], "lilypad_v2": {}, "tax_jackpot": {"claimants": "verifiers"}}
    with pytest.raises(ConfigError, match=r"mechanism\.tax_jackpot\.claimants='verifiers' is invalid: .*'verifiers'"):
        stack_run(mech, CHEATERS, market=MARKET)
