"""A twin mechanism stack -> the deal contract's deployment parameters, or a ConfigError naming the field.

The contracts enforce what must hold on chain: the lilypad_v2 escrows, deadlines and settlement, the
collateral mechanism's per-offer multiplier, minimum deposit and collateral overrides, staking, and the consortium's
k-of-n panels (uniform selection, the client paying the fees, public votes) and tax_jackpot (taxes, the pool,
round payouts to the checking clients; no forced errors). Mechanisms that only shape
the parties' own decisions from the public record (check_policy: the client's check probability; reputation: the
solver's ranking) need nothing on chain. Any other mechanism changes settlement in a way the deployed contract
does not implement yet, so a stack that enables one is refused rather than deployed with different rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from mechanisms.base import MechanismStack
from mechanisms.collateral import CollateralConfig
from mechanisms.config import ConfigError
from mechanisms.consortium import ConsortiumConfig
from mechanisms.lilypad_v2 import SLASH_DESTINATIONS, LilypadV2Config
from mechanisms.replication import ReplicationConfig
from mechanisms.tax_jackpot import TaxJackpotConfig
from mechanisms.whistleblowing import WhistleblowingConfig

#: Mechanisms the contract enforces.
ON_CHAIN = ("lilypad_v2", "collateral", "staking", "consortium", "tax_jackpot", "replication", "whistleblowing")
#: Mechanisms computed off chain from the contract's events (nothing to enforce).
OFF_CHAIN = ("check_policy", "reputation")
DEPLOYABLE = ON_CHAIN + OFF_CHAIN
#: Why a mechanism is not deployable (the refusal names it; docs/chain.md explains).
NOT_ON_CHAIN_WHY = {
    "retention": "storage payments and the check window are not implemented",
}
UINT32_MAX = 2**32 - 1
UINT96_MAX = 2**96 - 1
#: Where the contract can send slashed stakes (StakeModule.STAKE_SLASH_*); the twin's `jackpot` needs the jackpot.
STAKE_SLASH_TO = ("burn", "protocol", "client")
#: PanelModule.FALLBACK_* and DISSENT_*, in code order.
PANEL_FALLBACK = ("majority", "accept", "reject")
DISSENT_TO = ("burn", "protocol", "payer")
#: ReplicationModule.TO_*, in code order (mechanisms.replication.WrongDepositTo).
WRONG_DEPOSIT_TO = ("honest_replica", "client", "burn")
#: Consortium options the contract implements, per field (others are refused naming the field, with the reason).
PANEL_SUPPORTED: dict[str, tuple[object, str]] = {
    "selection": ("uniform", "stake and reputation weights and bids are not on chain"),
    "fee_payer": (
        "client",
        "a node's share would be pulled at the verdict, which the node could block by emptying its wallet",
    ),
    "anonymous": (False, "votes and fee payouts are public on chain"),
}


@dataclass(frozen=True)
class ChainParams:
    """The resolved terms the deal contract is deployed with (see Deals.Config)."""

    payment_collateral_bps: int
    base_multiplier_bps: int
    multipliers_bps: tuple[int, ...]  # allowed offered multipliers; () = base only
    min_deposit: int
    submit_timeout_collateral: int
    judge_timeout_collateral: int
    mediation_fee: int
    deadline_agree: int
    deadline_submit: int
    deadline_judge: int
    deadline_mediate: int
    slash_to: str
    forfeit_payment: bool
    staking: bool = False  # the staking mechanism is enabled (StakeModule)
    stake_slash_bps: int = 0
    stake_slash_to: str = "burn"  # one of STAKE_SLASH_TO
    fee_share_bps: int = 0
    consortium: bool = False  # the consortium mechanism is enabled (PanelModule)
    panel_size: int = 0
    panel_threshold: int = 0
    panel_max_depth: int = 0
    panel_growth: int = 2
    panel_fallback: str = "majority"  # one of PANEL_FALLBACK
    member_fee: int = 0
    slash_dissent: bool = False
    dissent_to: str = "burn"  # one of DISSENT_TO
    rerun_costs: tuple[int, ...] = ()  # re-run cost per module (the market's compute costs)
    jackpot: bool = False  # the tax_jackpot mechanism is enabled (JackpotModule)
    tax_bps: int = 0
    tax_payer: str = "node"  # node | client
    jackpot_mode: str = "fraction"  # fraction | fixed
    fraction_bps: int = 0
    jackpot_amount: int = 0
    max_payout: int | None = None
    round_blocks: int = 1  # blocks between two payouts at least (a deployment choice: the twin's round)
    replication: bool = False  # the replication mechanism is enabled (ReplicationModule)
    replicas: int = 1
    commit_reveal: bool = False
    wrong_deposit_to: str = "honest_replica"  # one of WRONG_DEPOSIT_TO
    commit_blocks: int = 0  # the commit window from a job's opening (a deployment choice: half the submit deadline)
    whistleblowing: bool = False  # the bribed mediator's proof (WhistleModule, or ReplicationModule with replication)
    reward_bps: int = 10_000  # share of the proven briber's slashed deposit the reporting mediator keeps

    @property
    def jackpot_config(self) -> tuple[object, ...]:
        """The contract's JackpotConfig tuple."""
        cap = UINT96_MAX if self.max_payout is None else self.max_payout
        return (
            self.jackpot,
            self.tax_bps,
            self.tax_payer == "client",
            self.jackpot_mode == "fixed",
            self.fraction_bps,
            self.jackpot_amount,
            cap,
            self.round_blocks,
        )

    @property
    def panel(self) -> tuple[object, ...]:
        """The contract's PanelConfig tuple."""
        return (
            self.consortium,
            self.panel_size,
            self.panel_threshold,
            self.panel_max_depth,
            self.panel_growth,
            PANEL_FALLBACK.index(self.panel_fallback),
            self.slash_dissent,
            DISSENT_TO.index(self.dissent_to),
            self.member_fee,
            list(self.rerun_costs),
        )

    @property
    def slash_code(self) -> int:
        return SLASH_DESTINATIONS.index(self.slash_to)

    @property
    def stake_slash_code(self) -> int:
        return STAKE_SLASH_TO.index(self.stake_slash_to)

    def multiplier_of(self, offered: int) -> int:
        """The multiplier a node may offer (validated like the contract does)."""
        allowed = self.multipliers_bps or (self.base_multiplier_bps,)
        if offered not in allowed:
            raise ValueError(f"multiplier {offered} is not offered on this deployment; allowed {list(allowed)}")
        return offered

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["multipliers_bps"] = list(self.multipliers_bps)
        d["rerun_costs"] = list(self.rerun_costs)
        return d


def chain_params(stack: MechanismStack, rerun_costs: Sequence[int] = ()) -> ChainParams:
    """Resolve the enabled stack into contract parameters; refuse a stack the contracts cannot express.
    `rerun_costs` are the market's module compute costs (what a dissenting consortium member keeps)."""
    for mech, on, path in zip(stack.mechanisms, stack.enabled, stack.paths, strict=True):
        if on and mech.name not in DEPLOYABLE:
            why = NOT_ON_CHAIN_WHY.get(mech.name, "not implemented")
            raise ConfigError(
                f"{path}.enabled=True is invalid on chain: the contracts do not implement {mech.name!r} ({why}); "
                f"allowed on chain: {list(DEPLOYABLE)} (disable it with {path}.enabled=false to deploy without it)"
            )
    base = stack.get("lilypad_v2")
    if base is None:
        raise ConfigError(
            "mechanism.order is invalid on chain: allowed a stack with lilypad_v2 enabled (the deal contract's base)"
        )
    b: LilypadV2Config = base.config
    coll = stack.get("collateral")
    c: CollateralConfig = coll.config if coll is not None else CollateralConfig(multipliers_bps=())
    if coll is not None and stack.active.index(coll) < stack.active.index(base):
        raise ConfigError(
            "mechanism.order is invalid on chain: allowed collateral after lilypad_v2 (it replaces the base terms)"
        )
    override = {
        name: getattr(c, name)
        for name in ("submit_timeout_collateral", "judge_timeout_collateral", "payment_collateral_bps")
        if coll is not None
    }
    staking = stack.get("staking")
    if staking is not None and staking.config.slash_to not in STAKE_SLASH_TO:
        raise ConfigError(
            f"mechanism.staking.slash_to={staking.config.slash_to!r} is invalid on chain: allowed one of "
            f"{list(STAKE_SLASH_TO)} (stake slashes into the jackpot pool are not implemented)"
        )
    panel = _panel(stack, rerun_costs)
    return ChainParams(
        payment_collateral_bps=_or(override.get("payment_collateral_bps"), b.payment_collateral_bps),
        base_multiplier_bps=b.results_multiplier_bps,
        multipliers_bps=tuple(c.multipliers_bps) if coll is not None else (),
        min_deposit=c.min_deposit if coll is not None else 0,
        submit_timeout_collateral=_or(override.get("submit_timeout_collateral"), b.submit_timeout_collateral),
        judge_timeout_collateral=_or(override.get("judge_timeout_collateral"), b.judge_timeout_collateral),
        mediation_fee=b.mediation_fee,
        deadline_agree=b.deadline_agree,
        deadline_submit=b.deadline_submit,
        deadline_judge=b.deadline_judge,
        deadline_mediate=b.deadline_mediate,
        slash_to=b.slash_to,
        forfeit_payment=b.forfeit_payment,
        staking=staking is not None,
        stake_slash_bps=staking.config.slash_bps if staking is not None else 0,
        stake_slash_to=staking.config.slash_to if staking is not None else "burn",
        fee_share_bps=staking.config.fee_share_bps if staking is not None else 0,
        **panel,
        **_jackpot(stack),
        **_replication(stack, b.deadline_submit),
        **_whistleblowing(stack),
    )


#: Whistleblowing options the WhistleModule implements, per field (others are refused naming the field).
WHISTLE_SUPPORTED: dict[str, tuple[object, str]] = {
    "nodes": (
        False,
        "a cartel member's proof (the other members' signatures over the shared fake) and the excused reporter's "
        "refund are not implemented: the deal contract, at the EIP-170 code limit, has no room for the excused "
        "settlement",
    ),
    "mediators": (True, "with neither proof the mechanism does nothing: disable it"),
}


def _whistleblowing(stack: MechanismStack) -> dict[str, object]:
    """The whistleblowing module's parameters, or a ConfigError naming the field the contracts cannot express."""
    mech = stack.get("whistleblowing")
    if mech is None:
        return {}
    c: WhistleblowingConfig = mech.config
    for name, (allowed, why) in WHISTLE_SUPPORTED.items():
        if getattr(c, name) != allowed:
            raise ConfigError(
                f"mechanism.whistleblowing.{name}={getattr(c, name)!r} is invalid on chain: allowed {allowed!r} ({why})"
            )
    if stack.get("consortium") is not None:
        raise ConfigError(
            "mechanism.whistleblowing.enabled=True is invalid on chain with consortium: allowed without it (a panel "
            "votes through the deal contract, so a bribed member has no call to present its proof through; disable "
            "one with mechanism.consortium.enabled=false or mechanism.whistleblowing.enabled=false)"
        )
    return {"whistleblowing": True, "reward_bps": c.reward_bps}


def _replication(stack: MechanismStack, deadline_submit: int) -> dict[str, object]:
    """The replication module's parameters, or a ConfigError naming the field the contracts cannot express."""
    mech = stack.get("replication")
    if mech is None:
        return {}
    c: ReplicationConfig = mech.config
    if c.settle_once:
        raise ConfigError(
            "mechanism.replication.settle_once=True is invalid on chain: allowed False (the followers' fee-free "
            "checks and the lead's shared verdict would need a per-deal mediation fee in the deal contract, which is "
            "at the EIP-170 code limit)"
        )
    if c.wrong_deposit_to == "honest_replica" and stack.get("consortium") is not None:
        raise ConfigError(
            "mechanism.replication.wrong_deposit_to='honest_replica' is invalid on chain with the consortium: allowed "
            "'client' or 'burn' (a panel's votes declare no correct result, so no honest replica can be named)"
        )
    return {
        "replication": True,
        "replicas": c.replicas,
        "commit_reveal": c.commit_reveal,
        "wrong_deposit_to": c.wrong_deposit_to,
        "commit_blocks": max(1, deadline_submit // 2),
    }


def _jackpot(stack: MechanismStack) -> dict[str, object]:
    """The tax_jackpot's contract parameters, or a ConfigError naming the field the contract cannot express."""
    mech = stack.get("tax_jackpot")
    if mech is None:
        return {}
    c: TaxJackpotConfig = mech.config
    if c.forced_error_rate != 0:
        raise ConfigError(
            f"mechanism.tax_jackpot.forced_error_rate={c.forced_error_rate!r} is invalid on chain: allowed 0 (forced "
            "errors need the protocol's sealed commitment of which results it swapped, not implemented)"
        )
    if c.reward_mediators:
        raise ConfigError(
            "mechanism.tax_jackpot.reward_mediators=True is invalid on chain: allowed False (only the checking "
            "client claims on chain)"
        )
    return {
        "jackpot": True,
        "tax_bps": c.tax_bps,
        "tax_payer": c.tax_payer,
        "jackpot_mode": c.mode,
        "fraction_bps": c.fraction_bps,
        "jackpot_amount": c.amount,
        "max_payout": c.max_payout,
    }


def _panel(stack: MechanismStack, rerun_costs: Sequence[int]) -> dict[str, object]:
    """The consortium's contract parameters, or a ConfigError naming the field the contract cannot express."""
    mech = stack.get("consortium")
    if mech is None:
        return {}
    c: ConsortiumConfig = mech.config
    for name, (allowed, why) in PANEL_SUPPORTED.items():
        if getattr(c, name) != allowed:
            raise ConfigError(
                f"mechanism.consortium.{name}={getattr(c, name)!r} is invalid on chain: allowed {allowed!r} ({why})"
            )
    if not rerun_costs:
        raise ConfigError(
            "market.modules is invalid on chain: allowed at least one module whose compute_cost the consortium's "
            "dissenters keep (pass the market's compute costs)"
        )
    return {
        "consortium": True,
        "panel_size": c.size,
        "panel_threshold": c.threshold,
        "panel_max_depth": c.max_depth,
        "panel_growth": c.growth,
        "panel_fallback": c.fallback,
        "member_fee": c.member_fee,
        "slash_dissent": c.slash_dissent,
        "dissent_to": c.dissent_to,
        "rerun_costs": tuple(int(x) for x in rerun_costs),
    }


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def check_live(stack: MechanismStack, mediator_draw: str = "chain") -> None:
    """Refuse, naming the field, what the live services cannot run although the contracts can: a consortium's panel
    drawn by the solver (`stack`: the contract's beacon seats the panel at the check). Every mechanism the contracts
    deploy runs live; whistleblowing's limits are the chain's own (`chain_params`: no cartel proof, not with a
    consortium)."""
    if mediator_draw == "stack" and stack.get("consortium") is not None:
        raise ConfigError(
            "network.mediator_draw='stack' is invalid with mechanism.consortium enabled: allowed 'chain' (the "
            "contract seats the whole panel from the mediators both parties trust)"
        )


def check_market(n_mediators: int) -> None:
    """The contract's mediator registry holds at most 64 mediators (one bit each in a deal's trust mask)."""
    if not 1 <= n_mediators <= 64:
        raise ConfigError(f"market.n_mediators={n_mediators} is invalid on chain: allowed an integer in [1, 64]")
