"""A twin mechanism stack -> the deal contract's deployment parameters, or a ConfigError naming the field.

The contracts enforce what must hold on chain: the lilypad_v2 escrows, deadlines and settlement, and the
collateral mechanism's per-offer multiplier, minimum deposit and collateral overrides. Mechanisms that only shape
the parties' own decisions from the public record (check_policy: the client's check probability; reputation: the
solver's ranking) need nothing on chain. Any other mechanism changes settlement in a way the deployed contract
does not implement yet, so a stack that enables one is refused rather than deployed with different rules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from mechanisms.base import MechanismStack
from mechanisms.collateral import CollateralConfig
from mechanisms.config import ConfigError
from mechanisms.lilypad_v2 import SLASH_DESTINATIONS, LilypadV2Config

#: Mechanisms the contract enforces.
ON_CHAIN = ("lilypad_v2", "collateral", "staking")
#: Mechanisms computed off chain from the contract's events (nothing to enforce).
OFF_CHAIN = ("check_policy", "reputation")
DEPLOYABLE = ON_CHAIN + OFF_CHAIN
UINT32_MAX = 2**32 - 1
#: Where the contract can send slashed stakes (StakeModule.STAKE_SLASH_*); the twin's `jackpot` needs the jackpot.
STAKE_SLASH_TO = ("burn", "protocol", "client")


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
        return d


def chain_params(stack: MechanismStack) -> ChainParams:
    """Resolve the enabled stack into contract parameters; refuse a stack the contracts cannot express."""
    for mech, on, path in zip(stack.mechanisms, stack.enabled, stack.paths, strict=True):
        if on and mech.name not in DEPLOYABLE:
            raise ConfigError(
                f"{path}.enabled=True is invalid on chain: the contracts do not implement {mech.name!r} yet; allowed "
                f"on chain: {list(DEPLOYABLE)} (disable it with {path}.enabled=false to deploy without it)"
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
            f"{list(STAKE_SLASH_TO)} (the jackpot is not on chain)"
        )
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
    )


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def check_market(n_mediators: int) -> None:
    """The contract's mediator registry holds at most 64 mediators (one bit each in a deal's trust mask)."""
    if not 1 <= n_mediators <= 64:
        raise ConfigError(f"market.n_mediators={n_mediators} is invalid on chain: allowed an integer in [1, 64]")
