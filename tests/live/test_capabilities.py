"""Node capabilities, the matching rule shared with the twin, the GPU device request and the container options.

None of this needs a Docker engine (or a GPU): the options the executor passes are checked here as data, and on a
real container in test_executor.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from docker.types import DeviceRequest, LogConfig
from hypothesis import given
from hypothesis import strategies as st

from live.executor import Capabilities, Executor, ExecutorError, container_options, device_requests, fits, shortfall
from live.executor.capabilities import memory_mib, parse_gpus
from live.modules.spec import JobSpec, Machine, parse_spec
from sim.offers import JobOffers, ResourceOffers
from sim.solver import match_reference

CPU_NODE = Capabilities(cpu=4000, gpu=0, vram=0, ram=8192, disk=10_000)
GPU_NODE = Capabilities(cpu=4000, gpu=1, vram=16_384, ram=8192, disk=10_000)
PINNED = "twin/x:v1@sha256:" + "cd" * 32


def spec(gpu: int = 0, vram: int = 0, resources: dict[str, str] | None = None) -> JobSpec:
    return parse_spec(
        "x:v1",
        {},
        {
            "machine": {"gpu": gpu, "cpu": 500, "ram": 64, "vram": vram},
            "job": {
                "Spec": {
                    "Docker": {
                        "Image": PINNED,
                        "Entrypoint": ["/bin/sh", "-c", "echo hi"],
                        "EnvironmentVariables": ["K=v"],
                    },
                    "Resources": resources or {},
                    "Timeout": 5,
                }
            },
        },
    )


@given(st.lists(st.integers(0, 5), min_size=5, max_size=5), st.lists(st.integers(0, 5), min_size=5, max_size=5))
def test_fits_is_componentwise_cover(needs: list[int], caps: list[int]) -> None:
    machine = Machine(cpu=needs[0] + 1, gpu=needs[1], vram=needs[2], ram=needs[3] + 1, disk=needs[4])
    node = Capabilities(*caps)
    assert fits(machine, node) == all(n <= c for n, c in zip(machine.needs(), node.vector(), strict=True))
    assert (shortfall(machine, node) == []) == fits(machine, node)


def test_a_gpu_module_never_fits_or_matches_a_node_without_a_gpu() -> None:
    gpu_job = spec(gpu=1, vram=1024).machine
    assert not fits(gpu_job, CPU_NODE) and fits(gpu_job, GPU_NODE)
    assert shortfall(gpu_job, CPU_NODE) == ["gpu: needs 1, has 0", "vram: needs 1024, has 0"]
    # The twin's solver on the same vectors: the cheaper CPU node is passed over for the GPU job.
    jobs = JobOffers(
        client=np.array([0]),
        module=np.array([0]),
        needs=np.array([gpu_job.needs()]),
        fixed=np.array([False]),
        max_price=np.array([0]),
        trust=np.array([1]),
        arrival=np.array([0]),
        jtype=np.array([0]),
        replica=np.array([0]),
        row=np.array([0]),
    )
    nodes = [CPU_NODE, GPU_NODE]
    offers = ResourceOffers(
        node=np.arange(2),
        capacity=np.array([n.vector() for n in nodes]),
        price=np.array([1, 5]),
        allow=np.zeros(2, dtype=np.int64),
        trust=np.ones(2, dtype=np.int64),
        arrival=np.arange(2),
        rtype=np.arange(2),
    )
    assert match_reference(jobs, offers).tolist() == [1]
    only_cpu = ResourceOffers(
        *(
            np.asarray(getattr(offers, f))[:1]
            for f in ("node", "capacity", "price", "allow", "trust", "arrival", "rtype")
        )
    )
    assert match_reference(jobs, only_cpu).tolist() == [-1]


def test_the_executor_refuses_a_job_that_does_not_fit_before_touching_the_engine(tmp_path: Path) -> None:
    executor = Executor(None, tmp_path, CPU_NODE)  # type: ignore[arg-type]  # never reached
    with pytest.raises(ExecutorError, match="module x:v1 does not fit this node: gpu: needs 1, has 0"):
        executor.run(spec(gpu=1))
    assert not (tmp_path / spec(gpu=1).spec_id).exists()


def test_gpu_device_request() -> None:
    [request] = device_requests(spec(gpu=1), GPU_NODE)
    assert isinstance(request, DeviceRequest)
    assert request == DeviceRequest(count=1, capabilities=[["gpu"]])
    assert dict(request) == {"Driver": "", "Count": 1, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}
    assert device_requests(spec(gpu=0), GPU_NODE) == []
    with pytest.raises(ExecutorError, match="asks for 1 GPU"):
        device_requests(spec(gpu=1), CPU_NODE)


def test_container_options_contain_the_job(tmp_path: Path) -> None:
    opts = container_options(
        spec(resources={"CPU": "250m", "Memory": "32mb", "Pids": "40"}), tmp_path, CPU_NODE, "job1"
    )
    assert opts["image"] == "sha256:" + "cd" * 32  # run by content digest, never by name
    assert opts["entrypoint"] == ["/bin/sh", "-c", "echo hi"] and opts["command"] == []
    assert opts["environment"] == ["K=v"]
    assert opts["network_mode"] == "none" and opts["network_disabled"] is True and opts["read_only"] is True
    assert opts["cap_drop"] == ["ALL"] and opts["security_opt"] == ["no-new-privileges"]
    assert opts["user"] == "1000:1000"
    assert opts["mem_limit"] == opts["memswap_limit"] == "32m"
    assert opts["nano_cpus"] == 250_000_000 and opts["pids_limit"] == 40
    assert opts["tmpfs"] == {"/tmp": "rw,nosuid,nodev,size=32m,mode=1777"}
    assert opts["volumes"] == {str(tmp_path): {"bind": "/outputs", "mode": "rw"}}
    assert opts["device_requests"] == []
    assert isinstance(opts["log_config"], LogConfig)
    assert opts["labels"] == {"twin.job": "job1", "twin.module": "x:v1"}
    gpu_opts = container_options(spec(gpu=1), tmp_path, GPU_NODE, "job2")
    assert gpu_opts["device_requests"] == [DeviceRequest(count=1, capabilities=[["gpu"]])]


def test_parse_gpus_from_nvidia_smi_csv() -> None:
    csv = "0, NVIDIA H100 80GB HBM3, 81559\n1, NVIDIA A10, 23028\n"
    gpus = parse_gpus(csv)
    assert [(g.index, g.name, g.vram) for g in gpus] == [(0, "NVIDIA H100 80GB HBM3", 81559), (1, "NVIDIA A10", 23028)]
    caps = Capabilities.detect(Path("."), gpus=gpus)
    assert (caps.gpu, caps.vram) == (2, 23028)


def test_detect_reports_this_host(tmp_path: Path) -> None:
    caps = Capabilities.detect(tmp_path / "work", gpus=[])
    assert caps.cpu >= 1000 and caps.cpu % 1000 == 0
    assert 0 < caps.ram == memory_mib()
    assert caps.disk > 0 and (caps.gpu, caps.vram) == (0, 0)
