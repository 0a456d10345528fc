"""Invariant violations: the twin broke one of its own rules. That is a bug in the code, never the user's config.

A config the twin cannot run is refused up front with a `mechanisms.config.ConfigError` naming the field. Every
error raised later because a rule of the protocol or the ledger failed (a deal moved along an edge the protocol does
not have, a transfer would leave a balance or an escrow negative, a negative amount, value created or destroyed)
derives from `InvariantViolation`, so a sweep can record such a run as a bug, apart from config errors and other
failures (docs/architecture.md, "Config errors and bugs").
"""

from __future__ import annotations


class InvariantViolation(Exception):
    """One of the twin's own invariants failed: a bug to report, not a config to fix."""
