"""Fictitious play in the inspection game: nodes and clients best-respond to the other side's empirical frequency.

Each round every node cheats iff cheating pays against the check rate observed so far, and every client checks iff
checking pays against the cheat rate observed so far. A node sees how often posted results were checked (public:
each deal's state); a client learns of a fake it received when a check proves it or when its damage shows (its
own experience, pooled over the clients, who are alike), never of another agent's private choice; each side knows
only its own stage payoffs. In a 2x2 game with a unique mixed equilibrium the time averages of fictitious play
converge to it (Miyasawa 1961), so a mixed equilibrium is measured as the time average of what the agents actually
did, not as a committed rate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated

import numpy as np

from mechanisms.actions import Actions
from mechanisms.config import Probability, Range, from_mapping
from mechanisms.deals import DealBatch

NonNegative = Annotated[float, Range(0.0, None)]


@dataclass(frozen=True)
class InspectionPayoffs:
    """Each side's own stage payoffs, linear in the other side's rate.

    node:   gain of cheating over honesty = saved - q x loss   (loss: what a proven cheat forgoes, x detection)
    client: gain of checking over not     = r x value - cost   (value: what a proven fake is worth to it)"""

    saved: NonNegative
    loss: NonNegative
    value: NonNegative
    cost: NonNegative
    prior_check: Probability = 0.5  # beliefs before anything was observed
    prior_cheat: Probability = 0.5
    temperature: NonNegative = 0.0  # 0: pure best responses; > 0: logit (smoothed), rate = 1/(1+e^-gain/T)

    def check_fields(self, path: str) -> None:
        """Every field against its annotation (a ConfigError naming the field)."""
        from_mapping(type(self), asdict(self), path)

    def respond(self, gain: np.ndarray) -> np.ndarray:
        """The rate played given the expected gain of the action over the alternative."""
        if self.temperature == 0:
            return np.where(gain > 0, 1.0, 0.0)
        return 1.0 / (1.0 + np.exp(-np.clip(gain / self.temperature, -500, 500)))


class FictitiousPlay:
    """Sets each node's cheat rate and each client's check rate to its pure best response to its own beliefs."""

    def __init__(self, payoffs: InspectionPayoffs, n_clients: int, n_nodes: int, first_node: int) -> None:
        payoffs.check_fields("fictitious_play")
        self.payoffs, self.first_node = payoffs, first_node
        self.node_results = np.zeros(n_nodes, dtype=np.int64)  # results each node posted
        self.node_checks = np.zeros(n_nodes, dtype=np.int64)  # ... of which were checked (public)
        self.client_results = np.zeros(n_clients, dtype=np.int64)  # results each client received
        self.client_fakes = np.zeros(n_clients, dtype=np.int64)  # ... that turned out fake (proven or damage)

    def observe(self, deals: DealBatch) -> None:
        """Add a settled round to each agent's own observations."""
        node, posted = deals.node - self.first_node, deals.submitted
        np.add.at(self.node_results, node[posted], 1)
        np.add.at(self.node_checks, node[posted & deals.checked], 1)
        np.add.at(self.client_results, deals.client[posted], 1)
        np.add.at(self.client_fakes, deals.client[posted & deals.wrong()], 1)

    def beliefs(self) -> tuple[np.ndarray, np.ndarray]:
        """(check rate each node believes in, cheat rate each client believes in); priors before any result."""
        p = self.payoffs
        check = np.where(self.node_results > 0, self.node_checks / np.maximum(self.node_results, 1), p.prior_check)
        cheat = np.where(self.client_results > 0, self.client_fakes / np.maximum(self.client_results, 1), p.prior_cheat)
        return check, cheat

    def act(self, actions: Actions) -> None:
        """Write the round's best responses into `actions`."""
        p = self.payoffs
        check, cheat = self.beliefs()
        actions.nodes.cheat_rate[:] = p.respond(p.saved - check * p.loss)
        actions.clients.check_rate[:] = p.respond(cheat * p.value - p.cost)
