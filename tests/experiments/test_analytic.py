"""The closed forms of the literature's games (experiments.analysis.analytic), checked against their defining
indifference and best-response conditions rather than against restated formulas."""

from __future__ import annotations

import pytest

from experiments.analysis.analytic import (
    Dong,
    Modicum,
    NonDeterministicAttack,
    Truebit,
    bribe_loss_threshold,
    cheat_gain,
    client_check_gain,
    grim_trigger_discount,
    mixed_inspection,
    pure_equilibria,
)


def test_mixed_inspection_makes_both_sides_indifferent() -> None:
    args = {"price": 10, "multiplier": 2, "check_cost": 6, "damage": 20, "client_share": 0.5}
    eq = mixed_inspection(compute_cost=6, **args)
    assert eq.check_rate == pytest.approx(0.2)
    assert cheat_gain(eq.check_rate, 10, 6, 2) == pytest.approx(0)  # the node is indifferent at q*
    assert client_check_gain(eq.cheat_rate, **args) == pytest.approx(0)  # the client at r*
    assert eq.cheat_rate == pytest.approx(6 / (20 + 10 + 0.5 * 2 * 10))
    # more damage or a larger share of the deposit makes checking worth more, so less cheating is needed
    assert mixed_inspection(compute_cost=6, **{**args, "damage": 40}).cheat_rate < eq.cheat_rate
    assert mixed_inspection(compute_cost=6, **{**args, "client_share": 1.0}).cheat_rate < eq.cheat_rate
    # imperfect detection raises both rates; a threshold above 1 means pure play
    weak = mixed_inspection(compute_cost=6, detect=0.5, **args)
    assert weak.check_rate == pytest.approx(0.4) and weak.cheat_rate == pytest.approx(2 * eq.cheat_rate)
    assert mixed_inspection(compute_cost=60, **args).check_rate == 1.0


def test_modicum_theorem1_conditions() -> None:
    game = Modicum(price=10, compute_cost=6, fine=20, check_cost=1, fee=6, detect=0.8, honest=0.9, client_share=1)
    q_min = game.min_verification_rate()
    assert q_min == pytest.approx(6 / (0.72 * 30))
    assert game.honest_conditions(q_min + 1e-9)["rp_honest"]
    assert not game.honest_conditions(q_min - 1e-3)["rp_honest"]
    # a dishonest mediator (10%) wrongly rejects a correct result: worth 0.1 x (10 + 20) = 3 < fee 6 + v 1
    assert game.honest_conditions(1.0)["jc_no_false_dispute"]
    assert not Modicum(10, 6, 20, 1, 1, honest=0.9, client_share=1).honest_conditions(1.0)["jc_no_false_dispute"]
    assert not Modicum(10, 6, 20, 1, 5).honest_conditions(1.0)["mediator_covered"]


def test_modicum_mixed_equilibrium_indifference() -> None:
    game = Modicum(price=10, compute_cost=6, fine=20, check_cost=2, fee=6, detect=0.9, honest=0.95, damage=15)
    eq = game.mixed()
    assert eq.check_rate * game.proof * (game.fine + game.price) == pytest.approx(game.compute_cost)
    assert eq.cheat_rate * game.dispute_value() == pytest.approx(game.check_cost + game.fee)
    assert game.dispute_value() == pytest.approx(0.9 * 0.95 * (15 + 10))
    # with perfect verification it is the inspection game with the check costing v + fee
    plain = Modicum(price=10, compute_cost=6, fine=20, check_cost=2, fee=6, damage=15, client_share=0.5).mixed()
    assert plain == mixed_inspection(10, 6, 2, check_cost=8, damage=15, client_share=0.5)


def test_non_deterministic_attack() -> None:
    attack = NonDeterministicAttack(price=10, compute_cost=6, fine=20, fee=6, wrong_verdict=0.3)
    assert attack.threshold() == pytest.approx(0.2)
    assert attack.gain_per_dispute() == pytest.approx(0.3 * 30 - 6)
    rate = attack.optimal_rate()
    # at the optimal rate the RP's expected profit is exactly zero: attacking more drives it away
    assert 10 - 6 - rate * 0.3 * 30 == pytest.approx(0)
    assert NonDeterministicAttack(10, 6, 20, 6, wrong_verdict=0.19).optimal_rate() == 0.0
    assert NonDeterministicAttack(10, 1, 20, 6, wrong_verdict=0.25).optimal_rate() == 1.0


@pytest.mark.parametrize(("deposit", "honest_dominant"), [(15, True), (9, False), (8, False)])
def test_prisoners_contract(deposit: float, honest_dominant: bool) -> None:
    dong = Dong(wage=10, compute_cost=6, deposit=deposit, dispute_cost=3)
    table = dong.prisoners()
    assert dong.honesty_deposit() == 9
    strictly = table[("H", "C")][0] > table[("C", "C")][0] and table[("H", "H")][0] > table[("C", "H")][0]
    assert strictly == honest_dominant
    assert pure_equilibria(table) == ([("H", "H")] if honest_dominant else [("C", "C"), ("H", "H")])


def test_colluders_contract_loyalty_payment() -> None:
    base = Dong(wage=10, compute_cost=6, deposit=20, dispute_cost=3, collusion_deposit=5)
    b_min = base.loyalty_side_payment()
    assert b_min == 6
    loyal = Dong(10, 6, 20, 3, side_payment=b_min + 1, collusion_deposit=5).colluders()
    disloyal = Dong(10, 6, 20, 3, side_payment=b_min - 1, collusion_deposit=5).colluders()
    assert loyal[("C", "C")][1] > loyal[("C", "H")][1]  # the follower's best reply to collusion is collusion
    assert disloyal[("C", "C")][1] < disloyal[("C", "H")][1]


def test_traitors_contract() -> None:
    dong = Dong(wage=10, compute_cost=6, deposit=20, dispute_cost=3, side_payment=4)
    table = dong.traitors()
    assert table[("C", "T")][1] > table[("C", "C")][1]  # betraying beats a side payment below d - c - ch = 11
    assert dong.traitor_side_payment() == 11
    assert dong.collusion_deterred()  # 11 > c: the ringleader cannot afford loyalty
    assert pure_equilibria(table) == [("T", "T")]
    assert not Dong(10, 6, 14, 3).collusion_deterred()  # d <= 2c + ch = 15


def test_grim_trigger_discount() -> None:
    dong = Dong(wage=10, compute_cost=6, deposit=20, dispute_cost=3)
    delta = grim_trigger_discount(dong)
    assert delta == pytest.approx(1 - 6 / 17)
    t, r, p = 10 - 6 + 20 - 3, 10, 4
    # at delta* colluding forever equals deviating once and being punished forever
    assert r / (1 - delta) == pytest.approx(t + delta * p / (1 - delta))
    assert grim_trigger_discount(Dong(10, 6, 8, 3)) == 0.0  # collusion is a one-shot equilibrium


def test_truebit_jackpot() -> None:
    tb = Truebit(tasks=1000, tax=1, forced_rate=0.05, fraction=0.1, verification_cost=0.2)
    jackpot = tb.steady_jackpot()
    assert jackpot == pytest.approx(10_000)
    assert jackpot * (1 - 0.1) + 1000 == pytest.approx(jackpot)  # a fixed point of the round's update
    assert tb.payout_per_forced_error() == pytest.approx(1 / 0.05)
    n = tb.break_even_verifiers()
    assert 0.05 * tb.payout_per_forced_error() / n == pytest.approx(0.2)  # reward per task = cost at n*
    assert n == pytest.approx(5)


def test_bribe_threshold() -> None:
    assert bribe_loss_threshold(10, 6, 2, q=0.25) == pytest.approx(24)  # c / q binds
    assert bribe_loss_threshold(10, 6, 2, q=0.1) == pytest.approx(30)  # (m + 1) p binds
    price, cost, q = 10, 6, 0.25
    loss = bribe_loss_threshold(price, cost, 2, q)
    assert price - q * (loss - 1) > price - cost and price - q * (loss + 1) < price - cost
