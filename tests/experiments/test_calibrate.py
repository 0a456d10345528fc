"""Calibration's estimators: the censored exponential mean and the per-phase fit from state blocks."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.calibrate import censored_mean, fit_response
from mechanisms.config import ConfigError

DEADLINES = {"deadline_agree": 10, "deadline_submit": 60, "deadline_judge": 30, "deadline_mediate": 60}


def test_censored_mean_recovers_an_exponential_mean() -> None:
    rng = np.random.default_rng(0)
    t = rng.exponential(20.0, 20_000)
    deadline = 30.0
    obs, cens = t[t <= deadline], np.full(int((t > deadline).sum()), deadline)
    assert censored_mean(list(obs), list(cens)) == pytest.approx(20.0, rel=0.03)
    assert censored_mean([], [10.0]) == 100.0  # nobody ever answered: nearly always late


def test_fit_response_reads_each_phase_and_censors_timeouts() -> None:
    phases = {
        1: {"DealNegotiating": 0, "DealAgreed": 2, "ResultsSubmitted": 6, "ResultsAccepted": 7},
        2: {"DealNegotiating": 10, "DealAgreed": 12, "TimeoutSubmitResults": 80},
        3: {
            "DealNegotiating": 20,
            "DealAgreed": 22,
            "ResultsSubmitted": 30,
            "ResultsChecked": 33,
            "MediationRejected": 40,
        },
    }
    fit = fit_response(phases, DEADLINES)
    assert fit["client_agree"] == fit["node_agree"] == 2.0
    assert fit["node_submit"] == (4 + 8 + 60) / 2
    assert fit["client_judge"] == 2.0
    assert fit["mediator"] == 7.0


def test_calibrate_names_a_missing_trace(tmp_path) -> None:
    from experiments.calibrate import calibrate

    with pytest.raises(ConfigError, match="trace="):
        calibrate(tmp_path, tmp_path / "out")
