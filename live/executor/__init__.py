"""Run module jobs in contained Docker containers; node capabilities; result ids."""

from live.executor.capabilities import Capabilities, Gpu, detect_gpus, fits, shortfall
from live.executor.results import ResultError, result_id
from live.executor.runner import ExecResult, Executor, ExecutorError, container_options, device_requests

__all__ = [
    "Capabilities",
    "ExecResult",
    "Executor",
    "ExecutorError",
    "Gpu",
    "ResultError",
    "container_options",
    "detect_gpus",
    "device_requests",
    "fits",
    "result_id",
    "shortfall",
]
