"""`python -m experiments.calibrate trace=<live run dir> [out=<dir>]`: fit the twin's market to a live run.

From the live trace (`deals.parquet`, `phases.parquet` and the run's `config.json`, as `make live` writes them) it
fits, per role and phase, the mean response time in blocks (exponential times, censored at the deadline for the
phases that timed out: mean = total observed time / number of answers), each node's cheat rate and each client's
check rate (their shares in the trace), and the module mix; mediators keep the run's strategies. It writes a Hydra
config directory: `<out>/market/calibrated.yaml`, `<out>/agents/calibrated.yaml` and `<out>/mechanism/calibrated.yaml`
(the deployed mechanism), so the twin runs on it with

    python -m experiments.simulate hydra.searchpath=[file://<out>] market=calibrated agents=calibrated \
        mechanism=calibrated
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from omegaconf import OmegaConf

from mechanisms.config import ConfigError

PHASES = {  # response-time field -> (state it starts in, states that answer it, its timeout state, deadline key)
    "client_agree": ("DealNegotiating", ("DealAgreed",), "TimeoutAgree", "deadline_agree"),
    "node_agree": ("DealNegotiating", ("DealAgreed",), "TimeoutAgree", "deadline_agree"),
    "node_submit": ("DealAgreed", ("ResultsSubmitted",), "TimeoutSubmitResults", "deadline_submit"),
    "client_judge": (
        "ResultsSubmitted",
        ("ResultsAccepted", "ResultsChecked"),
        "TimeoutJudgeResults",
        "deadline_judge",
    ),
    "mediator": (
        "ResultsChecked",
        ("MediationAccepted", "MediationRejected"),
        "TimeoutMediateResults",
        "deadline_mediate",
    ),
}
NONE_ANSWERED_FACTOR = 10.0  # no answer at all in a phase: a mean this many deadlines long (nearly always late)


def censored_mean(observed: Sequence[float], censored: Sequence[float]) -> float:
    """Maximum-likelihood mean of an exponential from answered times and times still unanswered at a deadline."""
    if not observed:
        return NONE_ANSWERED_FACTOR * (max(censored) if censored else 1.0)
    return (float(sum(observed)) + float(sum(censored))) / len(observed)


def fit_response(phases: Mapping[int, Mapping[str, int]], deadlines: Mapping[str, int]) -> dict[str, float]:
    """Mean response time per phase (blocks) from each deal's state blocks."""
    out = {}
    for name, (start, answers, timeout, deadline) in PHASES.items():
        obs, cens = [], []
        for blocks in phases.values():
            if start not in blocks:
                continue
            answered = [blocks[a] for a in answers if a in blocks]
            if answered:
                obs.append(max(min(answered) - blocks[start], 0))
            elif timeout in blocks:
                cens.append(deadlines[deadline])
        out[name] = round(censored_mean(obs, cens), 4)
    return out


def calibrate(trace: Path, out: Path) -> dict[str, Any]:
    """Fit and write the config directory; returns the fitted sections."""
    for f in ("deals.parquet", "phases.parquet", "config.json"):
        if not (trace / f).is_file():
            raise ConfigError(f"trace={trace} is invalid: allowed a live run directory holding {f} (make live)")
    cfg = json.loads((trace / "config.json").read_text())
    deals = pq.read_table(trace / "deals.parquet").to_pydict()
    ph = pq.read_table(trace / "phases.parquet").to_pydict()
    phases: dict[int, dict[str, int]] = {}
    for d, s, b in zip(ph["deal_id"], ph["state"], ph["block"], strict=True):
        phases.setdefault(int(d), {})[s] = int(b)
    lil = cfg["mechanism"].get("lilypad_v2") or {}
    from mechanisms.lilypad_v2 import LilypadV2Config

    base = LilypadV2Config()
    deadlines = {
        k: int(lil.get(k, getattr(base, k)))
        for k in ("deadline_agree", "deadline_submit", "deadline_judge", "deadline_mediate")
    }
    market = dict(cfg["market"])
    market["response"] = fit_response(phases, deadlines)
    counts = np.bincount([market_index(market, str(m)) for m in deals["module"]], minlength=len(market["modules"]))
    market["modules"] = [{**m, "weight": int(max(c, 0)) or 1} for m, c in zip(market["modules"], counts, strict=True)]
    n_c = int(market["n_clients"])
    nodes, clients = [], []
    for i in range(int(market["n_nodes"])):
        mine = [k for k, n in enumerate(deals["node"]) if n == n_c + i]
        rate = float(np.mean([deals["cheated"][k] for k in mine])) if mine else 0.0
        nodes.append(
            {"strategy": "cheater", "share": 1, "rate": round(rate, 6), "bribe": 0}
            if rate > 0
            else {"strategy": "honest", "share": 1}
        )
    for i in range(n_c):
        judged = [
            k
            for k, c in enumerate(deals["client"])
            if c == i and "ResultsSubmitted" in phases.get(int(deals["deal_id"][k]), {})
        ]
        q = float(np.mean([deals["checked"][k] for k in judged])) if judged else 0.0
        clients.append({"strategy": "checker", "share": 1, "q": round(q, 6)})
    agents = {"nodes": nodes, "clients": clients, "mediators": [{**m, "share": 1} for m in cfg["network"]["mediators"]]}
    for group, body in (("market", market), ("agents", agents), ("mechanism", cfg["mechanism"])):
        (out / group).mkdir(parents=True, exist_ok=True)
        (out / group / "calibrated.yaml").write_text(
            f"# calibrated from {trace} by experiments.calibrate\n" + OmegaConf.to_yaml(OmegaConf.create(body))
        )
    return {"market": market, "agents": agents, "mechanism": cfg["mechanism"]}


def market_index(market: Mapping[str, Any], name: str) -> int:
    return [m["name"] for m in market["modules"]].index(name)


def main(argv: Sequence[str]) -> None:
    args = dict(a.partition("=")[::2] for a in argv)
    unknown = sorted(set(args) - {"trace", "out"})
    if "trace" not in args or unknown:
        sys.exit(f"experiments.calibrate: allowed trace=<live run dir> [out=<dir>]; got {list(argv)}")
    trace = Path(args["trace"])
    out = Path(args.get("out") or trace / "calibrated")
    try:
        fitted = calibrate(trace, out)
    except ConfigError as exc:
        sys.exit(f"experiments.calibrate: {exc}")
    print(f"response times (blocks): {fitted['market']['response']}")
    print(f"wrote {out}/market/calibrated.yaml, agents/calibrated.yaml, mechanism/calibrated.yaml")


if __name__ == "__main__":
    main(sys.argv[1:])
