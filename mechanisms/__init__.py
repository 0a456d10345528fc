"""Pluggable mechanisms on the deal lifecycle. Importing the package registers the built-in ones."""

from mechanisms import (  # noqa: F401  (registers)
    check_policy,
    collateral,
    collusion_contracts,
    consortium,
    dispute_costs,
    imperfect_verification,
    lilypad_v2,
    replication,
    reputation,
    retention,
    staking,
    tax_jackpot,
    verifiers,
    whistleblowing,
)
from mechanisms.base import MarketFacts, Mechanism, MechanismStack, register, registered
from mechanisms.config import ConfigError

__all__ = ["ConfigError", "MarketFacts", "Mechanism", "MechanismStack", "register", "registered"]
