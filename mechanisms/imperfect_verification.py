"""Imperfect verification and non-deterministic jobs: a mediation may miss a wrong result or reject a correct one.

The base mechanism's mediator re-runs the job and compares bit for bit, so its verdict is always right. MODiCuM
models a detection probability below one, and jobs whose honest results differ between runs (floating point,
sampling), which a validator must judge equivalent and sometimes judges wrongly; a job creator can dispute correct
results of such jobs hoping for that wrong verdict (the MODiCuM attack, measured with clients that check and a
non-zero `nd_false_reject`).

* `client_detection`: probability that a client's check of a wrong result finds it. A check that misses does not
  dispute the result: it is accepted and paid, no mediation, no fee (the client still pays its own
  `dispute_costs.verification_cost`). Replicas that disagree need no check to be disputed, so they are not affected;
  list `verifiers` (whose finds are not the client's) after this mechanism;
* `detection`: probability that a mediation which would reject a wrong result does reject it (else it accepts);
* `false_reject`: probability that a mediation rejects a correct result of a deterministic module;
* `nondeterministic_modules`: module indices (`market.modules` order) whose honest results differ between runs;
  their correct results are rejected with probability `nd_false_reject` (the validator's error).

Replicas of a non-deterministic job never agree bit for bit, even when both are honest: every such job bought as
several replicas goes to mediation, where the validator decides equivalence (and errs as above).

Only honest verdicts are affected: a vote bought by a bribe or by the cartel stays as it was. List before
`whistleblowing`, whose proofs are certain (it reads nothing this mechanism writes, so the stack cannot enforce it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np

from mechanisms.base import Mechanism, register
from mechanisms.config import Length, Probability, Range, require
from mechanisms.deals import DealBatch
from mechanisms.groups import disagreeing, group_sum
from mechanisms.hooks import Columns, hook_columns

MAX_MODULES = 64
ModuleIndex = Annotated[int, Range(0, MAX_MODULES - 1)]


@dataclass(frozen=True)
class ImperfectVerificationConfig:
    client_detection: Probability = 1.0  # probability that a client's check of a wrong result finds it
    detection: Probability = 1.0  # probability that mediation rejects a wrong result it would reject
    false_reject: Probability = 0.0  # probability that mediation rejects a correct deterministic result
    # module indices (market.modules order) whose honest results differ between runs
    nondeterministic_modules: Annotated[tuple[ModuleIndex, ...], Length(0, MAX_MODULES)] = ()
    nd_false_reject: Probability = 0.0  # probability that the validator rejects a correct non-deterministic result

    def validate(self, path: str) -> None:
        unique = len(set(self.nondeterministic_modules)) == len(self.nondeterministic_modules)
        require(unique, f"{path}.nondeterministic_modules", self.nondeterministic_modules, "distinct module indices")


@register
class ImperfectVerification(Mechanism):
    name = "imperfect_verification"
    Config = ImperfectVerificationConfig
    # One uniform per deal: whether the client's check misses (u < 1 - client_detection), then, for a check that found
    # the wrong result, the same uniform rescaled to [0, 1) (uniform again given u >= 1 - client_detection) decides
    # whether the verdict errs. With client_detection = 1 the draws are those of the mechanism without it.
    draws_per_deal = 1
    columns = hook_columns(
        choose_checks=Columns(
            reads=("submitted", "judged", "result"),
            updates=("checked",),
            sets=("imperfect_verification.missed", "imperfect_verification.found"),
        ),
        review=Columns(
            reads=(
                "mediated",
                "result",
                "bribe_accepted",
                "mediator_collude",
                "mediator",
                "imperfect_verification.found",
            ),
            updates=("verdict_accept",),
        ),
    )

    def nondeterministic(self, deals: DealBatch) -> np.ndarray:
        return np.isin(deals.module, np.asarray(self.config.nondeterministic_modules, dtype=np.int64))

    def choose_checks(self, deals: DealBatch) -> None:
        """A client's check misses a wrong result with probability 1 - client_detection (the result is then not
        disputed). Replicas of a non-deterministic job differ even when honest, so the job goes to mediation."""
        miss = 1.0 - self.config.client_detection
        client_check = deals.checked & deals.wrong() & ~disagreeing(deals.group, deals.submitted, deals.result)
        missed = client_check & (self.uniforms(deals) < miss)
        deals.checked &= ~missed
        deals.extra["imperfect_verification.missed"] = missed
        deals.extra["imperfect_verification.found"] = client_check & ~missed
        replicated = group_sum(deals.group, deals.submitted.astype(np.int64)) >= 2
        deals.checked |= deals.judged & self.nondeterministic(deals) & replicated

    def error_rate(self, deals: DealBatch) -> np.ndarray:
        """Per deal, the probability that an honest verdict is wrong."""
        c = self.config
        nd = self.nondeterministic(deals)
        return np.where(deals.wrong(), 1.0 - c.detection, np.where(nd, c.nd_false_reject, c.false_reject))

    def review(self, deals: DealBatch) -> None:
        honest = deals.mediated & ~deals.bribe_accepted & ~deals.mediator_collude[np.clip(deals.mediator, 0, None)]
        u, miss = self.uniforms(deals), 1.0 - self.config.client_detection
        if 0.0 < miss < 1.0:  # a check that found the fake drew u >= miss: rescaled, u is uniform on [0, 1) again
            u = np.where(deals.extra["imperfect_verification.found"], (u - miss) / (1.0 - miss), u)
        errs = honest & (u < self.error_rate(deals))
        deals.verdict_accept = np.where(errs, ~deals.verdict_accept, deals.verdict_accept)
