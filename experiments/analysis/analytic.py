"""The inspection game: the closed-form benchmark the measured gains are drawn against.

A node paid p per job that costs it c to compute posts results collateral m x p. A client checks with committed
probability q; an honest mediator catches every fake it sees; a caught cheater loses the collateral and, with
`forfeit_payment`, the payment. Per job:

    honest: p - c        always cheat: p - q (m + f) p        (f = 1 if the payment is forfeited, else 0)
    gain of cheating at rate r:  r (c - q (m + f) p),  positive iff  q < q* = c / ((m + f) p)

(price 10, cost 6, multiplier 2, forfeit: q* = 0.2). The model holds for a market where it can be read off the
config: one module at one price, every job matched every round (one job per node and round), nobody late, nobody
restricted by allowlists or trust, and a stack of the base mechanism alone, optionally with a fixed check policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mechanisms.config import ConfigError
from mechanisms.money import BPS
from twin.build import parse

RESOURCES = ("cpu", "gpu", "vram", "ram", "disk")
#: `${inspection_threshold:}` in a Hydra config: q* of the config's own market, mechanism and agents (see
#: `register_resolver`), so a plotted threshold is never typed by hand.
RESOLVER = "inspection_threshold"


@dataclass(frozen=True)
class InspectionGame:
    price: float  # job cost p (price x instructions)
    compute_cost: float  # c
    multiplier: float  # m
    forfeit_payment: bool
    q: float | None  # the check probability of the configuration, when it has a single one

    @property
    def threshold(self) -> float:
        """q*: cheating pays iff the check probability is below it."""
        return threshold(self.price, self.compute_cost, self.multiplier, self.forfeit_payment)

    def gain(self, q: float, rate: float = 1.0) -> float:
        """Expected gain per job (= per round here) of cheating at `rate` over honesty."""
        return cheat_gain(q, self.price, self.compute_cost, self.multiplier, self.forfeit_payment, rate)


def threshold(price: float, compute_cost: float, multiplier: float, forfeit_payment: bool = True) -> float:
    return compute_cost / ((multiplier + float(forfeit_payment)) * price)


def cheat_gain(
    q: float, price: float, compute_cost: float, multiplier: float, forfeit_payment: bool = True, rate: float = 1.0
) -> float:
    return rate * (compute_cost - q * (multiplier + float(forfeit_payment)) * price)


def inspection_game(cfg: Mapping[str, Any]) -> InspectionGame | None:
    """The inspection game a simulate-style config (market, mechanism, agents) reduces to, or None."""
    parsed = parse({k: cfg[k] for k in ("market", "mechanism", "agents") if k in cfg})
    m = parsed.market
    r = m.response
    ok = (
        len(m.modules) == 1
        and m.node_price[0] == m.node_price[1]
        and m.client_max_price[0] >= m.node_price[1]
        and m.client_activity == 1.0
        and m.node_activity == 1.0
        and m.n_clients >= m.n_nodes
        and all(v == 0 for v in (r.client_agree, r.node_agree, r.node_submit, r.client_judge, r.mediator))
        and all(not a for a in m.allowlists)
        and all(not t for t in m.trust_profiles)
        and all(getattr(box, k) >= getattr(m.modules[0], k) for box in m.machines for k in RESOURCES)
    )
    active = {mech.name: mech.config for mech in parsed.stack.active}
    base = active.pop("lilypad_v2", None)
    policy = active.pop("check_policy", None)
    if not ok or base is None or active or (policy is not None and policy.mode != "fixed"):
        return None
    module = m.modules[0]
    if policy is not None:
        q: float | None = float(policy.q)
    else:
        rates = {getattr(s, "q", 0.0) for s, _ in parsed.population.assignment["clients"]}
        q = float(rates.pop()) if len(rates) == 1 else None
    return InspectionGame(
        float(m.node_price[0] * module.instructions),
        float(module.compute_cost),
        base.results_multiplier_bps / BPS,
        base.forfeit_payment,
        q,
    )


def config_threshold(*, _root_: DictConfig) -> float | None:
    """The resolver's value: q* of the inspection game the whole config reduces to, None where it does not (or
    where the config is invalid: the app's own validation then names the field)."""
    sections = {
        k: OmegaConf.to_container(_root_[k], resolve=True) for k in ("market", "mechanism", "agents") if k in _root_
    }
    try:
        game = inspection_game(sections)
    except ConfigError:
        return None
    return None if game is None else game.threshold


def register_resolver() -> None:
    """Make `${inspection_threshold:}` resolvable (idempotent); apps whose configs use it call this at import."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, config_threshold)


# --- The inspection game with client economics (value, damage, a share of the slashed deposit) --------------------
#
# The node (price p, compute cost c, deposit m p, payment forfeited when caught iff f = 1) cheats at rate r; the
# client checks at rate q, paying v per check (its own verification cost plus the mediation fee it is not refunded).
# A check of a fake finds it with probability `detect` (client's check x mediator's detection); a found fake is not
# paid, so the client recovers the payment p (if forfeited) and a share s of the slashed deposit, and avoids the
# damage D of accepting it. The mixed equilibrium makes each side indifferent:
#
#     node:    c = q detect (m + f) p                 =>  q* = c / (detect (m + f) p)
#     client:  v = r detect (D + f p + s m p)         =>  r* = v / (detect (D + f p + s m p))
#
# (an interior equilibrium needs q* < 1 and r* < 1; otherwise the side facing a threshold above 1 plays pure).


@dataclass(frozen=True)
class MixedInspection:
    """The node's cheat rate and the client's check rate of the inspection game's mixed equilibrium."""

    check_rate: float  # q*: the client's rate that leaves the node indifferent
    cheat_rate: float  # r*: the node's rate that leaves the client indifferent


def mixed_inspection(
    price: float,
    compute_cost: float,
    multiplier: float,
    check_cost: float,
    damage: float,
    client_share: float = 0.0,
    forfeit_payment: bool = True,
    detect: float = 1.0,
) -> MixedInspection:
    """The mixed equilibrium (q*, r*) of the inspection game with client damage and a share of the slashed deposit.

    `check_cost` is everything one check costs the client; `client_share` the fraction of the slashed deposit the
    client receives; `detect` the probability that a checked fake is proven. Rates are capped at 1 (pure play)."""
    f = float(forfeit_payment)
    q = compute_cost / (detect * (multiplier + f) * price)
    r = check_cost / (detect * (damage + f * price + client_share * multiplier * price))
    return MixedInspection(min(q, 1.0), min(r, 1.0))


def client_check_gain(
    cheat_rate: float,
    price: float,
    multiplier: float,
    check_cost: float,
    damage: float,
    client_share: float = 0.0,
    forfeit_payment: bool = True,
    detect: float = 1.0,
) -> float:
    """The client's expected gain per job of checking over not checking, against a node cheating at `cheat_rate`."""
    f = float(forfeit_payment)
    return cheat_rate * detect * (damage + f * price + client_share * multiplier * price) - check_cost


# --- MODiCuM (Eisele et al., DEBS 2020) ------------------------------------------------------------------------------
#
# A job creator (JC) pays p to a resource provider (RP) whose cost is c; the RP posts a deposit (fine) F. The JC
# verifies a result with probability q by asking a mediator: it pays its own verification cost v and the mediator's
# fee, its check finds a wrong result with probability `detect`, and the mediator rules correctly with probability
# `honest` (proof = detect x honest). A proven cheat forfeits the payment and the fine, a share s of which reaches
# the JC; an unproven fake is accepted and costs the JC its damage D.


@dataclass(frozen=True)
class Modicum:
    price: float  # p
    compute_cost: float  # c: the RP's (and the mediator's re-run) cost
    fine: float  # F: the RP's deposit lost when a dispute proves its result wrong
    check_cost: float  # v: the JC's own verification cost per check
    fee: float  # the mediation fee the JC pays per check
    detect: float = 1.0  # probability that a check finds a wrong result
    honest: float = 1.0  # probability that the mediator rules correctly
    client_share: float = 0.0  # share of the fine the JC receives
    damage: float = 0.0  # the JC's loss from accepting a wrong result

    @property
    def proof(self) -> float:
        """Probability that a checked fake is proven."""
        return self.detect * self.honest

    def honest_conditions(self, q: float) -> dict[str, bool]:
        """Theorem 1's conditions for honesty at the JC's verification rate q: the RP does not cheat (its expected
        loss from cheating covers the cost it saves), the JC does not dispute a correct result (a dishonest
        mediator's wrong verdict pays less than a check costs), and the mediator is not out of pocket for a re-run."""
        return {
            "rp_honest": q * self.proof * (self.fine + self.price) >= self.compute_cost,
            "jc_no_false_dispute": (1 - self.honest) * (self.price + self.client_share * self.fine)
            <= self.fee + self.check_cost,
            "mediator_covered": self.fee >= self.compute_cost,
        }

    def min_verification_rate(self) -> float:
        """The smallest q at which the RP's honesty is a best response (Theorem 1's first condition)."""
        return self.compute_cost / (self.proof * (self.fine + self.price))

    def dispute_value(self) -> float:
        """What checking a fake is worth to the JC: with probability `proof` it recovers the payment and its share
        of the fine and avoids the damage. Its gain from checking against cheat rate r is r x dispute_value minus
        what a check costs (v + fee)."""
        return self.proof * (self.damage + self.price + self.client_share * self.fine)

    def mixed(self) -> MixedInspection:
        """The 2020 model's mixed equilibrium: verification rate q* (the RP indifferent) and cheat rate r* (the JC
        indifferent)."""
        return MixedInspection(
            min(self.min_verification_rate(), 1.0), min((self.check_cost + self.fee) / self.dispute_value(), 1.0)
        )


@dataclass(frozen=True)
class NonDeterministicAttack:
    """The MODiCuM attack on non-deterministic jobs: the JC disputes correct results, hoping the mediator's
    equivalence check wrongly rejects one (probability `wrong_verdict`), which returns its payment and its share of
    the fine. The RP walks away from a JC whose attacks leave it a loss, so the JC attacks as often as the RP bears."""

    price: float
    compute_cost: float
    fine: float
    fee: float
    wrong_verdict: float  # probability that mediation rejects a correct non-deterministic result
    client_share: float = 1.0

    def gain_per_dispute(self) -> float:
        """The JC's expected gain from disputing one correct result."""
        return self.wrong_verdict * (self.price + self.client_share * self.fine) - self.fee

    def threshold(self) -> float:
        """The wrong-verdict probability above which disputing correct results pays."""
        return self.fee / (self.price + self.client_share * self.fine)

    def optimal_rate(self) -> float:
        """The JC's optimal attack probability: 0 below the threshold; above it, the largest rate at which the RP's
        expected profit p - c - a x wrong_verdict x (p + F) stays non-negative (capped at 1)."""
        if self.gain_per_dispute() <= 0:
            return 0.0
        return min(1.0, (self.price - self.compute_cost) / (self.wrong_verdict * (self.price + self.fine)))


# --- Dong et al. (CCS 2017): Prisoner's, Colluder's and Traitor's contracts -----------------------------------------
#
# A client pays each of two clouds w for the same task (cost c); each posts deposit d. Equal results are accepted;
# unequal ones go to a trusted third party whose cost ch is paid from the cheater's deposit, the rest of which goes
# to the honest cloud. Actions: H (compute honestly), C (collude: post the agreed wrong result, at no cost).

Table = dict[tuple[str, str], tuple[float, float]]


@dataclass(frozen=True)
class Dong:
    wage: float  # w
    compute_cost: float  # c
    deposit: float  # d
    dispute_cost: float  # ch
    side_payment: float = 0.0  # b: the ringleader's payment to a loyal follower (Colluder's contract)
    collusion_deposit: float = 0.0  # t: lost to the partner by whoever deviates from the collusion

    def prisoners(self) -> Table:
        """Payoffs (row cloud, column cloud) under the Prisoner's contract."""
        w, c, d, ch = self.wage, self.compute_cost, self.deposit, self.dispute_cost
        return {
            ("H", "H"): (w - c, w - c),
            ("H", "C"): (w - c + d - ch, -d),
            ("C", "H"): (-d, w - c + d - ch),
            ("C", "C"): (w, w),
        }

    def honesty_deposit(self) -> float:
        """The deposit above which honesty strictly dominates under the Prisoner's contract: d > c + ch."""
        return self.compute_cost + self.dispute_cost

    def colluders(self) -> Table:
        """Payoffs (ringleader, follower) once both signed the Colluder's contract: a deviator from the agreed
        wrong result also loses t to its partner; a loyal follower receives b from the ringleader."""
        w, c, d, ch = self.wage, self.compute_cost, self.deposit, self.dispute_cost
        b, t = self.side_payment, self.collusion_deposit
        return {
            ("H", "H"): (w - c, w - c),
            ("H", "C"): (w - c + d - ch - t, -d + t),
            ("C", "H"): (-d + t, w - c + d - ch - t),
            ("C", "C"): (w - b, w + b),
        }

    def loyalty_side_payment(self) -> float:
        """The side payment above which a follower stays loyal under the Colluder's contract: b > d - c - ch - t."""
        return self.deposit - self.compute_cost - self.dispute_cost - self.collusion_deposit

    def traitors(self) -> Table:
        """Payoffs (ringleader, follower) under the Traitor's contract: a traitor (T) that reports the collusion and
        delivers the correct result is paid w, receives the cheater's deposit less ch, and the Colluder's contract
        is void (no side payment, no collusion deposit changes hands); the client is made whole."""
        w, c, d, ch, b = self.wage, self.compute_cost, self.deposit, self.dispute_cost, self.side_payment
        return {
            ("C", "C"): (w - b, w + b),
            ("C", "T"): (-d, w - c + d - ch),
            ("T", "C"): (w - c + d - ch, -d),
            ("T", "T"): (w - c, w - c),
        }

    def traitor_side_payment(self) -> float:
        """Under the Traitor's contract, the side payment a follower needs to stay loyal: b > d - c - ch."""
        return self.deposit - self.compute_cost - self.dispute_cost

    def collusion_deterred(self) -> bool:
        """The Traitor's contract deters collusion when no side payment both keeps the follower loyal and leaves
        the ringleader better off than honest work (b <= c): d > 2c + ch."""
        return self.traitor_side_payment() > self.compute_cost


def pure_equilibria(table: Table) -> list[tuple[str, str]]:
    """The pure Nash equilibria of a two-player payoff table."""
    rows = sorted({a for a, _ in table})
    cols = sorted({b for _, b in table})
    return [
        (a, b)
        for a in rows
        for b in cols
        if table[(a, b)][0] >= max(table[(x, b)][0] for x in rows)
        and table[(a, b)][1] >= max(table[(a, y)][1] for y in cols)
    ]


def grim_trigger_discount(dong: Dong) -> float:
    """The discount factor above which two fixed partners sustain collusion under the Prisoner's contract with grim
    trigger (collude while the partner colluded, honest forever after a deviation): delta* = (T - R) / (T - P), with
    temptation T = w - c + d - ch, reward R = w and punishment P = w - c. 0 when collusion is a one-shot equilibrium
    (d <= c + ch)."""
    table = dong.prisoners()
    temptation, reward, punishment = table[("H", "C")][0], table[("C", "C")][0], table[("H", "H")][0]
    if temptation <= reward:
        return 0.0
    return (temptation - reward) / (temptation - punishment)


# --- Truebit (Teutsch and Reitwiessner) ------------------------------------------------------------------------------
#
# Every task pays a tax tau into the jackpot; a fraction `forced_rate` of tasks carry a forced error; each round the
# jackpot pays `fraction` of its balance at the round's start, shared among the round's forced errors found, when
# there is at least one (probability `p_claims`). Inflow per round T = tasks x tau.


@dataclass(frozen=True)
class Truebit:
    tasks: float  # tasks per round
    tax: float  # tau: tax per task into the jackpot
    forced_rate: float  # rho: share of tasks with a forced error
    fraction: float  # share of the jackpot paid out per round with claims
    verification_cost: float = 0.0  # each verifier's cost per task
    p_claims: float = 1.0  # probability that a round has at least one claim

    def steady_jackpot(self) -> float:
        """J* with J' = J (1 - p_claims fraction) + T: J* = T / (p_claims fraction) (before the round's payout)."""
        return self.tasks * self.tax / (self.p_claims * self.fraction)

    def payout_per_forced_error(self) -> float:
        """What the jackpot pays per forced error found, on average: it pays fraction x J* in the share p_claims of
        rounds that have claims, against tasks x rho forced errors per round, so tax / rho (the tax of 1 / rho
        tasks)."""
        return self.p_claims * self.fraction * self.steady_jackpot() / (self.tasks * self.forced_rate)

    def break_even_verifiers(self) -> float:
        """The number of verifiers n at which a verifier's reward per task, rho x payout / n, equals its cost."""
        return self.forced_rate * self.payout_per_forced_error() / self.verification_cost


# --- The bribable mediator ---------------------------------------------------------------------------------------


def bribe_loss_threshold(
    price: float, compute_cost: float, multiplier: float, q: float, forfeit_payment: bool = True
) -> float:
    """The mediator's expected loss L from taking a bribe (so the smallest bribe it accepts) above which no node
    offers one: a cheater bribing L when checked earns p - q L against p - c honestly and p - q (m + f) p cheating
    without a bribe, so it bribes iff L < min(c / q, (m + f) p)."""
    return min(compute_cost / q, (multiplier + float(forfeit_payment)) * price)
