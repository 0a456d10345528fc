"""Scripted engine scenarios for the chain tests and the gas benchmark: a small market whose agents reach every
terminal state (slow responses give timeouts in every phase, cheaters and bribable mediators give both verdicts)."""

from __future__ import annotations

from typing import Any


def market_cfg(n_clients: int = 30, n_nodes: int = 30, n_mediators: int = 4, n_stakers: int = 0) -> dict[str, Any]:
    """Slow responses (so every phase has timeouts), two trust profiles (so mediator draws vary)."""
    return {
        "n_clients": n_clients,
        "n_nodes": n_nodes,
        "n_mediators": n_mediators,
        "n_stakers": n_stakers,
        "staker_balance": 10_000,
        "trust_profiles": [[], [0, 1], [2, 3]],
        "response": {
            "client_agree": 4.0,
            "node_agree": 4.0,
            "node_submit": 20.0,
            "client_judge": 12.0,
            "mediator": 25.0,
        },
    }


AGENTS = {
    "nodes": [{"strategy": "honest", "share": 0.5}, {"strategy": "cheater", "share": 0.5, "rate": 0.6, "bribe": 30}],
    "clients": [{"strategy": "checker", "share": 1.0, "q": 0.5}],
    "mediators": [{"strategy": "honest", "share": 0.5}, {"strategy": "bribable", "share": 0.5, "threshold": 25}],
}


def diff_cfg(mechanism: dict[str, Any] | None = None, seed: int = 3, **market: int) -> dict[str, Any]:
    """An engine config for the differential tests (lilypad_v2 alone unless `mechanism` is given)."""
    return {
        "seed": seed,
        "market": market_cfg(**market),
        "agents": AGENTS,
        "mechanism": mechanism or {"order": ["lilypad_v2"]},
    }
