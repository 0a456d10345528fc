"""History-dependent scripted strategies for replicas on fixed pairs: the repeated Prisoner's contract.

Each node decides every round whether to post the cartel's agreed wrong result (collude, C) or compute honestly
(H), from its partner's last public action: the results two replicas post are public once revealed, so a node sees
whether its partner posted the cartel's result. Strategies:

* `grim`: collude until the partner once posts anything else, then honest forever (grim trigger);
* `tit_for_tat`: collude in the first round, then do what the partner did last round;
* `collude` / `honest`: always C / always H.

Partners are whoever shares a job with the node (in a market of one client and two nodes, the same pair every
round). `RepeatedPlay` writes the round's actions and reads the settled round back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from mechanisms.actions import Actions
from mechanisms.config import require
from mechanisms.deals import CARTEL_FAKE, DealBatch

RepeatedStrategy = Literal["grim", "tit_for_tat", "collude", "honest"]
STRATEGIES: tuple[str, ...] = ("grim", "tit_for_tat", "collude", "honest")


class RepeatedPlay:
    """Per node: its strategy, whether its partner colluded last round, whether it was ever betrayed."""

    def __init__(self, strategies: Sequence[str], first_node: int) -> None:
        for i, s in enumerate(strategies):
            require(s in STRATEGIES, f"strategies[{i}]", s, f"one of {list(STRATEGIES)}")
        self.strategies = np.array(strategies, dtype=object)
        self.first_node = first_node
        n = len(strategies)
        self.partner_colluded = np.ones(n, dtype=bool)  # nobody has been betrayed before the first round
        self.betrayed = np.zeros(n, dtype=bool)

    def colludes(self) -> np.ndarray:
        """Whether each node posts the cartel's result this round."""
        s = self.strategies
        return (s == "collude") | ((s == "grim") & ~self.betrayed) | ((s == "tit_for_tat") & self.partner_colluded)

    def act(self, actions: Actions) -> None:
        collude = self.colludes()
        actions.nodes.collude[:] = collude
        actions.nodes.cheat_rate[:] = np.where(collude, 1.0, 0.0)

    def observe(self, deals: DealBatch) -> None:
        """Each node with a partner this round sees whether the partner posted the cartel's result."""
        node = deals.node - self.first_node
        for g in np.unique(deals.group):
            rows = np.flatnonzero(deals.group == g)
            if len(rows) != 2:
                continue
            for me, other in ((rows[0], rows[1]), (rows[1], rows[0])):
                colluded = bool(deals.submitted[other] and deals.result[other] == CARTEL_FAKE)
                self.partner_colluded[node[me]] = colluded
                self.betrayed[node[me]] |= not colluded
