"""Reproductions of the verifiable-computing literature's games: each module measures its results with the twin
(preset `configs/reproduce/<game>.yaml`) beside the closed forms of `experiments.analysis.analytic`."""

from __future__ import annotations

from collections.abc import Callable

from experiments.reproduction import bribe, dong, inspection, modicum, repeated, repeated_ppo, truebit
from experiments.reproduction.common import Result

#: game -> its `reproduce(small)`
GAMES: dict[str, Callable[[bool], list[Result]]] = {
    "inspection": inspection.reproduce,
    "modicum": modicum.reproduce,
    "dong": dong.reproduce,
    "repeated": repeated.reproduce,
    "repeated_ppo": repeated_ppo.reproduce,
    "truebit": truebit.reproduce,
    "bribe": bribe.reproduce,
}
