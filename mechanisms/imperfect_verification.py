"""Imperfect verification and non-deterministic jobs: a mediation may miss a wrong result or reject a correct one.

The base mechanism's mediator re-runs the job and compares bit for bit, so its verdict is always right. MODiCuM
models a detection probability below one, and jobs whose honest results differ between runs (floating point,
sampling), which a validator must judge equivalent and sometimes judges wrongly; a job creator can dispute correct
results of such jobs hoping for that wrong verdict (the MODiCuM attack, measured with clients that check and a
non-zero `nd_false_reject`).

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
from mechanisms.groups import group_sum
from mechanisms.hooks import Columns, hook_columns

MAX_MODULES = 64
ModuleIndex = Annotated[int, Range(0, MAX_MODULES - 1)]


@dataclass(frozen=True)
class ImperfectVerificationConfig:
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
    draws_per_deal = 1  # whether the verdict errs
    columns = hook_columns(
        choose_checks=Columns(reads=("submitted", "judged"), updates=("checked",)),
        review=Columns(
            reads=("mediated", "result", "bribe_accepted", "mediator_collude", "mediator"), updates=("verdict_accept",)
        ),
    )

    def nondeterministic(self, deals: DealBatch) -> np.ndarray:
        return np.isin(deals.module, np.asarray(self.config.nondeterministic_modules, dtype=np.int64))

    def choose_checks(self, deals: DealBatch) -> None:
        """Replicas of a non-deterministic job differ even when honest, so the job goes to mediation."""
        replicated = group_sum(deals.group, deals.submitted.astype(np.int64)) >= 2
        deals.checked |= deals.judged & self.nondeterministic(deals) & replicated

    def error_rate(self, deals: DealBatch) -> np.ndarray:
        """Per deal, the probability that an honest verdict is wrong."""
        c = self.config
        nd = self.nondeterministic(deals)
        return np.where(deals.wrong(), 1.0 - c.detection, np.where(nd, c.nd_false_reject, c.false_reject))

    def review(self, deals: DealBatch) -> None:
        honest = deals.mediated & ~deals.bribe_accepted & ~deals.mediator_collude[np.clip(deals.mediator, 0, None)]
        errs = honest & (self.uniforms(deals) < self.error_rate(deals))
        deals.verdict_accept = np.where(errs, ~deals.verdict_accept, deals.verdict_accept)
