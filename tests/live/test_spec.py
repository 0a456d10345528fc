"""Validation of a rendered module: each bad field is refused with an error naming it; limits follow the module."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from live.modules.spec import DEFAULT_PIDS, DEFAULT_TIMEOUT, Limits, Machine, decode, parse_spec
from mechanisms.config import ConfigError

PINNED = "twin/x:v1@sha256:" + "ab" * 32


def valid() -> dict[str, Any]:
    return {
        "machine": {"gpu": 0, "cpu": 500, "ram": 64},
        "job": {
            "APIVersion": "V1beta1",
            "Spec": {
                "Docker": {"Image": PINNED, "Entrypoint": ["/bin/sh", "-c", "true"], "EnvironmentVariables": ["A=1"]},
                "Engine": "Docker",
                "Network": {"Type": "None"},
                "Outputs": [{"Name": "outputs", "Path": "/outputs"}],
                "Resources": {"CPU": "250m", "Memory": "32mb"},
                "Timeout": 60,
                "Verifier": "Noop",
            },
        },
    }


def with_(path: str, value: Any) -> dict[str, Any]:
    """`valid()` with the dotted `path` set to `value` (or removed when value is ...)."""
    data = copy.deepcopy(valid())
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return data


def test_a_valid_module_parses_to_its_job() -> None:
    spec = parse_spec("x:v1", {"A": "b"}, valid())
    assert spec.machine == Machine(gpu=0, cpu=500, ram=64)
    assert spec.image == PINNED and spec.digest == "sha256:" + "ab" * 32
    assert spec.entrypoint == ("/bin/sh", "-c", "true") and spec.env == ("A=1",)
    assert spec.limits == Limits(cpu=250, memory=32, gpu=0, pids=DEFAULT_PIDS)
    assert spec.timeout == 60
    assert json.loads(spec.rendered) == valid()
    assert spec.spec_id != parse_spec("x:v1", {}, with_("job.Spec.Timeout", 61)).spec_id


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("job.Spec.Docker.Image", "alpine:3.20", "job.Spec.Docker.Image"),
        ("job.Spec.Docker.Image", "alpine@sha256:abc", "job.Spec.Docker.Image"),
        ("job.Spec.Docker.Image", ..., "job.Spec.Docker.Image"),
        ("job.Spec.Docker.Entrypoint", "/bin/sh", "job.Spec.Docker.Entrypoint"),
        ("job.Spec.Docker.Entrypoint", ["/bin/sh", 3], "job.Spec.Docker.Entrypoint[1]"),
        ("job.Spec.Docker.EnvironmentVariables", ["NOEQUALS"], "job.Spec.Docker.EnvironmentVariables[0]"),
        ("job.Spec.Network", {"Type": "Full"}, "job.Spec.Network.Type"),
        ("job.Spec.Outputs", [{"Name": "o", "Path": "/data"}], "job.Spec.Outputs"),
        ("job.Spec.Outputs", [], "job.Spec.Outputs"),
        ("job.Spec.Engine", "Wasm", "job.Spec.Engine"),
        ("job.Spec.Timeout", 0, "job.Spec.Timeout"),
        ("job.Spec.Timeout", "60", "job.Spec.Timeout"),
        ("job.Spec.Timeout", 10**6, "job.Spec.Timeout"),
        ("job.Spec.Resources.CPU", "2", "job.Spec.Resources.CPU"),  # above the machine request (500m)
        ("job.Spec.Resources.CPU", "lots", "job.Spec.Resources.CPU"),
        ("job.Spec.Resources.Memory", "1Gi", "job.Spec.Resources.Memory"),
        ("job.Spec.Resources.Memory", "12 parsecs", "job.Spec.Resources.Memory"),
        ("job.Spec.Resources.Memory", "0mb", "job.Spec.Resources.Memory"),
        ("job.Spec.Resources.CPU", "0", "job.Spec.Resources.CPU"),
        ("job.Spec.Resources.Memory", "0mb", "job.Spec.Resources.Memory"),
        ("job.Spec.Resources.CPU", "0", "job.Spec.Resources.CPU"),
        ("job.Spec.Resources.GPU", "1", "job.Spec.Resources.GPU"),
        ("job.Spec.Resources.Pids", 2, "job.Spec.Resources.Pids"),
        ("job.Spec", ..., "job.Spec"),
        ("job", ..., "job"),
        ("machine.cpu", ..., "machine.cpu"),
        ("machine.cpu", 0, "machine.cpu"),
        ("machine.ram", -1, "machine.ram"),
        ("machine.gpu", True, "machine.gpu"),
        ("machine.gpu", 0.5, "machine.gpu"),
        ("machine.cores", 4, "machine"),
        ("machine.gpus", [{"vram": "big"}], "machine.gpus[0].vram"),
    ],
)
def test_each_bad_field_is_named(path: str, value: Any, field: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(field) + r"[=:]"):
        parse_spec("x:v1", {}, with_(path, value))


@pytest.mark.parametrize(
    ("resources", "limits"),
    [
        ({}, Limits(cpu=500, memory=64, gpu=0, pids=DEFAULT_PIDS)),  # the machine request
        ({"CPU": "0.5", "Memory": "64Mi"}, Limits(cpu=500, memory=64, gpu=0, pids=DEFAULT_PIDS)),
        ({"CPU": "100m", "Memory": "1048576", "GPU": "", "Pids": "32"}, Limits(cpu=100, memory=1, gpu=0, pids=32)),
        ({"GPU": "0"}, Limits(cpu=500, memory=64, gpu=0, pids=DEFAULT_PIDS)),
        ({"CPU": 0.25, "Memory": "0.03125gb"}, None),  # a float CPU is not a Bacalhau quantity string or integer
    ],
)
def test_limits_follow_resources_within_the_machine_request(resources: dict[str, Any], limits: Limits | None) -> None:
    data = with_("job.Spec.Resources", resources)
    if limits is None:
        with pytest.raises(ConfigError, match=r"^job\.Spec\.Resources\.CPU="):
            parse_spec("x:v1", {}, data)
    else:
        assert parse_spec("x:v1", {}, data).limits == limits


def test_lilypad_defaults_when_fields_are_absent() -> None:
    data = valid()
    spec = data["job"]["Spec"]
    for key in ("Network", "Outputs", "Timeout", "Resources", "Engine"):
        del spec[key]
    del spec["Docker"]["EnvironmentVariables"]
    parsed = parse_spec("x:v1", {}, data)
    assert parsed.timeout == DEFAULT_TIMEOUT and parsed.env == ()
    assert parsed.limits == Limits(cpu=500, memory=64, gpu=0, pids=DEFAULT_PIDS)


def test_lilypad_gpu_list_sets_count_and_vram() -> None:
    data = with_("machine", {"cpu": 1000, "ram": 1024, "gpus": [{"vram": 8192}, {"vram": 4096}]})
    assert parse_spec("x:v1", {}, data).machine == Machine(gpu=2, cpu=1000, ram=1024, vram=8192)


def test_a_gpu_module_gets_a_gpu_limit() -> None:
    data = with_("machine", {"gpu": 1, "cpu": 500, "ram": 64})
    assert parse_spec("x:v1", {}, data).limits.gpu == 1


def test_decode_refuses_duplicate_keys_and_names_bad_json() -> None:
    doubled = '{"Image": "a", "Image": "b"}'
    with pytest.raises(ConfigError, match="repeats the key 'Image'"):
        decode(doubled)
    with pytest.raises(ConfigError, match=r"not valid JSON: .* line 2 column"):
        decode('{"a": 1,\n "b": }')
