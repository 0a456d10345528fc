"""Pluggable mechanisms on the deal lifecycle. Importing the package registers the built-in ones."""

from mechanisms import consortium, lilypad_v2, replication, whistleblowing  # noqa: F401  (registers)
from mechanisms.base import MarketFacts, Mechanism, MechanismStack, register, registered
from mechanisms.config import ConfigError

__all__ = ["ConfigError", "MarketFacts", "Mechanism", "MechanismStack", "register", "registered"]
