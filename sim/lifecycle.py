"""One round of deals through the state machine, as arrays: who agrees, who is late, who cheats and checks.

Agents' choices arrive as rates and are turned into decisions with the round's uniforms; lateness compares each
party's exponential response time to the phase's deadline. States advance through `advance`, which rejects any
transition the protocol table does not allow.
"""

from __future__ import annotations

import numpy as np

from mechanisms.actions import Actions
from mechanisms.base import MechanismStack
from mechanisms.deals import CARTEL_FAKE, CORRECT, FIRST_OWN_FAKE, FORCED_FAKE, DealBatch
from mechanisms.protocol import DealState, check_transitions
from sim.draws import E, RoundDraws, U
from sim.market import Market, ResponseTimes

S = DealState


def on_time(e: np.ndarray, mean: float, deadline: np.ndarray) -> np.ndarray:
    """A party answers in time iff its response time (e x mean) is within the deadline."""
    return e * mean <= deadline


def apply_actions(deals: DealBatch, actions: Actions, market: Market) -> None:
    """Copy the parties' chosen behaviour for this round onto their deals (before mechanisms set terms)."""
    node_row = deals.node - market.facts.first_node  # (indexing with an array copies)
    deals.bribe = actions.nodes.bribe[node_row]
    deals.colluding = actions.nodes.collude[node_row]
    deals.check_rate = actions.clients.check_rate[deals.client]
    deals.accused = actions.clients.accuse[deals.client]
    deals.reports = actions.nodes.report[node_row]
    deals.waits = actions.nodes.wait[node_row]
    deals.mediator_threshold = actions.mediators.bribe_threshold
    deals.mediator_collude = actions.mediators.collude
    deals.mediator_report = actions.mediators.report


def round_commitment(party: np.ndarray, exposure: np.ndarray) -> np.ndarray:
    """What each deal's party has at stake over all its deals of the round (a client buying replicas agrees to
    all or none of them, so it can never be caught short)."""
    total = np.zeros(int(party.max(initial=-1)) + 1, dtype=np.int64)
    np.add.at(total, party, exposure)
    return total[party]


def decide(
    deals: DealBatch, balance: np.ndarray, actions: Actions, draws: RoundDraws, market: Market, stack: MechanismStack
) -> None:
    """Fill the decision columns of `deals` (terms already set) for every phase."""
    r: ResponseTimes = market.config.response
    row = deals.job
    e = np.take(draws.e, row, axis=0)  # whole rows at once (numpy's take is faster than indexing for rows)
    node_row = deals.node - market.facts.first_node
    deals.client_agreed = (balance[deals.client] >= round_commitment(deals.client, deals.client_exposure)) & on_time(
        e[:, E.client_agree], r.client_agree, deals.deadline_agree
    )
    deals.node_agreed = (balance[deals.node] >= deals.node_exposure + deals.bribe) & on_time(
        e[:, E.node_agree], r.node_agree, deals.deadline_agree
    )
    agreed = deals.client_agreed & deals.node_agreed
    deals.submit_time = e[:, E.node_submit] * r.node_submit
    deals.submitted = agreed & (deals.submit_time <= deals.deadline_submit)
    deals.cheated = deals.submitted & (draws.u[row, U.cheat] < actions.nodes.cheat_rate[node_row])
    result = np.where(deals.colluding, CARTEL_FAKE, FIRST_OWN_FAKE + deals.deal_id)
    result[~deals.cheated] = CORRECT
    result[deals.forced_error & deals.submitted] = FORCED_FAKE
    deals.result = result
    deals.judge_time = e[:, E.client_judge] * r.client_judge
    deals.judged = deals.submitted & (deals.judge_time <= deals.deadline_judge)
    stack.choose_checks(deals)
    stack.select_mediators(deals)
    deals.mediated = deals.checked & on_time(e[:, E.mediator], r.mediator, deals.deadline_mediate)
    stack.judge(deals)


def advance(state: np.ndarray, visited: np.ndarray, mask: np.ndarray, to: DealState) -> None:
    """Move the deals in `mask` to state `to`, rejecting illegal moves."""
    rows = np.flatnonzero(mask)
    check_transitions(state[rows], np.broadcast_to(np.int64(to), rows.shape))
    state[rows] = int(to)
    visited[rows] |= 1 << int(to)


def resolve(deals: DealBatch) -> np.ndarray:
    """Walk every deal to its terminal state; sets `deals.state` and returns the visited-states bit mask."""
    n = len(deals)
    state = np.full(n, int(S.DealNegotiating), dtype=np.int64)
    visited = np.full(n, 1 << int(S.DealNegotiating), dtype=np.int64)
    agreed = deals.client_agreed & deals.node_agreed
    advance(state, visited, ~agreed, S.TimeoutAgree)
    advance(state, visited, agreed, S.DealAgreed)
    advance(state, visited, agreed & ~deals.submitted, S.TimeoutSubmitResults)
    advance(state, visited, deals.submitted, S.ResultsSubmitted)
    advance(state, visited, deals.submitted & ~deals.judged, S.TimeoutJudgeResults)
    advance(state, visited, deals.judged & ~deals.checked, S.ResultsAccepted)
    advance(state, visited, deals.checked, S.ResultsChecked)
    advance(state, visited, deals.checked & ~deals.mediated, S.TimeoutMediateResults)
    advance(state, visited, deals.mediated & deals.verdict_accept, S.MediationAccepted)
    advance(state, visited, deals.mediated & ~deals.verdict_accept, S.MediationRejected)
    deals.state = state
    return visited
