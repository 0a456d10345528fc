"""The largest amount a run can reach, derived from its config before it starts: int64 money never overflows.

numpy int64 arithmetic wraps silently, so a config whose amounts could leave int64 must be refused up front, with
the field to change. The bound is sound, not an estimate:

* every balance, escrow and pool holds at most the market's total value (value is conserved and never negative),
  so `MarketFacts.total_value` must fit (checked with the market's balances, `sim.market.MarketConfig`);
* a deal's terms start from the largest job cost and compute cost; each mechanism's `bound_money` raises the
  worst case of the terms it sets, adds what it puts into each party's exposure, and checks every product its
  hooks form (`MoneyBounds.product`), in stack order (offer ranking compounds along the stack);
* at agreement a client commits the exposure of all replicas of its job, a node its exposure plus its bribe (an
  agent's bribe is a config amount, at most `MAX_AMOUNT`): both must fit.

`mul_bps` itself is exact whatever the operands (see `mechanisms.money`), so a rate only matters through the
value it produces. The error names the field with the largest part in the amount that does not fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mechanisms.config import ConfigError, number
from mechanisms.money import BPS, INT64_MAX, MAX_AMOUNT

if TYPE_CHECKING:
    from mechanisms.base import MarketFacts

PARTIES = ("client", "node")


@dataclass(frozen=True)
class Part:
    """One config field's share of a party's exposure."""

    field: str
    value: Any
    amount: int


@dataclass
class MoneyBounds:
    """Worst-case money of one market under one stack, raised mechanism by mechanism."""

    facts: MarketFacts
    replicas: int = 1  # deals a client buys per job; it commits to all of them at once
    terms: dict[str, int] = field(default_factory=dict)  # largest value of each money column of a deal
    exposure: dict[str, list[Part]] = field(default_factory=lambda: {p: [] for p in PARTIES})
    rank: int = 0  # largest effective price offer ranking can produce so far

    def __post_init__(self) -> None:
        self.terms.setdefault("job_cost", self.facts.max_job_cost)
        self.terms.setdefault("compute_cost", self.facts.max_compute_cost)
        self.rank = self.rank or self.facts.max_price

    @property
    def job_cost(self) -> int:
        return self.terms["job_cost"]

    def product(
        self, field: str, value: Any, factor: int, what: str, size: int | None = None, allowed: str | None = None
    ) -> int:
        """`size x factor` (size defaults to the field's value), or a ConfigError naming `field` if it leaves int64
        (saying what is `allowed`; by default the largest size that fits)."""
        size = value if size is None else size
        amount = size * factor
        if amount > INT64_MAX:
            allowed = allowed or f"at most {number(INT64_MAX // max(factor, 1))} here"
            raise ConfigError(
                f"{field}={value!r} is invalid: allowed {allowed}, so that {what} ({number(size)} x "
                f"{number(factor)}) fits int64"
            )
        return amount

    def term(self, column: str, amount: int, field: str, value: Any, party: str | None = None) -> None:
        """A deal's `column` can reach `amount` (set by `field`); it also adds to `party`'s exposure."""
        self.terms[column] = max(self.terms.get(column, 0), amount)
        if party is not None:
            self.expose(party, amount, field, value)

    def expose(self, party: str, amount: int, field: str, value: Any) -> None:
        """`party` may have to hold `amount` more at agreement (a replaced term counts in full: a sound bound)."""
        self.exposure[party].append(Part(field, value, amount))

    def rate(self, column: str, rate_bps: int, field: str, party: str | None = None) -> int:
        """The term `column = job cost x rate_bps / BPS` (floor), as `term` records it; returns it."""
        amount = self.job_cost * rate_bps // BPS
        self.term(column, amount, field, rate_bps, party)
        return amount

    def check_commitments(self) -> None:
        """A client's exposure over its replicas, and a node's exposure plus its bribe, fit int64."""
        bribe = Part("agents.nodes[*].bribe", MAX_AMOUNT, MAX_AMOUNT)
        for party, parts, times in (
            ("client", self.exposure["client"], self.replicas),
            ("node", [*self.exposure["node"], bribe], 1),
        ):
            total = sum(p.amount for p in parts) * times
            if total > INT64_MAX:
                top = max(parts, key=lambda p: p.amount)
                raise ConfigError(
                    f"{top.field}={top.value!r} is invalid: allowed a smaller value, so that a {party}'s exposure at "
                    f"agreement ({number(total)}, of which {number(top.amount * times)} from this field) fits int64"
                )
