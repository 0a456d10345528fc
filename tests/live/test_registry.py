"""Module resolution and loading: `name:tag` to a directory, inputs checked, images pinned, errors before any run.

These tests need no Docker engine: the lock file that pins built images is written by hand here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from live.modules import ModuleError, available, load_module, parse_inputs, resolve
from live.modules.__main__ import cli
from live.modules.registry import BUILTIN_ROOT, read_lock, write_lock

EXAMPLES = [
    "cowsay:v1",
    "fault-crash:v1",
    "fault-memory:v1",
    "fault-timeout:v1",
    "gpu-probe:v1",
    "hashseq:v1",
    "random:v1",
]
LILYPAD_COWSAY = """{
  "machine": {"gpu": 0, "cpu": 1000, "ram": 100},
  "job": {
    "APIVersion": "V1beta1",
    "Metadata": {"CreatedAt": "0001-01-01T00:00:00Z", "Requester": {}},
    "Spec": {
      "Deal": {"Concurrency": 1},
      "Docker": {
        "Entrypoint": ["cowsay", {{ .Message }}],
        "Image": "grycap/cowsay:latest@sha256:fad516b39e3a587f33ce3dbbb1e646073ef35e0b696bcf9afb1a3e399ce2ab0b"
      },
      "Engine": "Docker",
      "Network": {"Type": "None"},
      "Outputs": [{"Name": "outputs", "Path": "/outputs"}],
      "PublisherSpec": {"Type": "ipfs"},
      "Resources": {"GPU": ""},
      "Timeout": 1800,
      "Verifier": "Noop"
    }
  }
}
"""


def fake_pin(ref: str) -> str:
    name, tag = ref.split(":")
    return f"twin/{name}:{tag}@sha256:" + hashlib.sha256(ref.encode()).hexdigest()


@pytest.fixture
def lock(tmp_path: Path) -> Path:
    path = tmp_path / "images.json"
    write_lock({ref: fake_pin(ref) for ref in EXAMPLES}, path)
    return path


def module_dir(root: Path, ref: str, template: str) -> Path:
    name, tag = ref.split(":")
    d = root / name / tag
    d.mkdir(parents=True)
    (d / "lilypad_module.json.tmpl").write_text(template)
    return root


def test_the_shipped_examples_are_available() -> None:
    assert available([BUILTIN_ROOT]) == EXAMPLES


@pytest.mark.parametrize("ref", EXAMPLES)
def test_every_example_renders_to_a_valid_pinned_job(ref: str, lock: Path) -> None:
    spec = load_module(ref, {}, lock=lock)
    assert spec.image == fake_pin(ref)
    assert spec.entrypoint[0] == "/bin/sh" and spec.entrypoint[1].startswith("/module/")
    assert (resolve(ref).path / "image" / spec.entrypoint[1].removeprefix("/module/")).is_file()


def test_the_examples_cover_the_job_kinds(lock: Path) -> None:
    specs = {ref: load_module(ref, {}, lock=lock) for ref in EXAMPLES}
    assert [r for r, s in specs.items() if s.machine.gpu > 0] == ["gpu-probe:v1"]
    assert specs["fault-timeout:v1"].timeout == 2
    assert specs["fault-memory:v1"].limits.memory == 32
    assert load_module("cowsay:v1", {"Message": "moo"}, lock=lock).entrypoint[2] == "moo"
    assert specs["cowsay:v1"].entrypoint[2] == "hello, lilypad"  # the template's default
    assert load_module("hashseq:v1", {"N": "7"}, lock=lock).entrypoint[2] == "7"


def test_a_lilypad_module_with_a_registry_pinned_image_loads_unchanged(tmp_path: Path) -> None:
    root = module_dir(tmp_path, "cowsay:v0.0.1", LILYPAD_COWSAY)
    spec = load_module("cowsay:v0.0.1", {"Message": "moo"}, search=[root], lock=tmp_path / "none.json")
    assert spec.entrypoint == ("cowsay", "moo")
    assert spec.digest == "sha256:fad516b39e3a587f33ce3dbbb1e646073ef35e0b696bcf9afb1a3e399ce2ab0b"
    assert spec.timeout == 1800 and spec.machine.ram == 100


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("cowsay", "module='cowsay' is invalid: allowed name:tag"),
        ("Cowsay:v1", "module='Cowsay:v1' is invalid"),
        ("cowsay:v9", "module='cowsay:v9' not found under"),
        ("nosuch:v1", "allowed ['cowsay:v1', "),
    ],
)
def test_unknown_or_malformed_references(ref: str, message: str, lock: Path) -> None:
    with pytest.raises(ModuleError) as err:
        load_module(ref, {}, lock=lock)
    assert message in str(err.value)


def test_inputs_are_checked_before_rendering(lock: Path) -> None:
    with pytest.raises(ModuleError, match=r"input 'Mesage' is not used by the template: allowed \['Message'\]"):
        load_module("cowsay:v1", {"Mesage": "moo"}, lock=lock)
    with pytest.raises(ModuleError, match="input 'N' is invalid: allowed string keys and string values"):
        load_module("hashseq:v1", {"N": 7}, lock=lock)  # type: ignore[dict-item]


def test_an_unbuilt_image_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModuleError, match=r"module cowsay:v1: its image is not built: run `python -m live.modules"):
        load_module("cowsay:v1", {}, lock=tmp_path / "empty.json")


def test_template_and_spec_errors_name_the_module(tmp_path: Path) -> None:
    root = module_dir(tmp_path, "bad:v1", "{{ range .X }}{{ end }}")
    module_dir(root, "unpinned:v1", LILYPAD_COWSAY.replace("@sha256:fad516b3", "@sha256:zz"))
    module_dir(root, "required:v1", LILYPAD_COWSAY)
    with pytest.raises(ModuleError, match=r"module bad:v1: lilypad_module.json.tmpl line 1: unsupported action"):
        resolve("bad:v1", [root])
    with pytest.raises(ModuleError, match=r"module unpinned:v1: job\.Spec\.Docker\.Image='grycap"):
        load_module("unpinned:v1", {"Message": "m"}, search=[root])
    with pytest.raises(ModuleError, match=r"module required:v1: input 'Message' is required"):
        load_module("required:v1", {}, search=[root])


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [(["Message=moo"], {"Message": "moo"}), (["A=x=y"], {"A": "x=y"}), (["A="], {"A": ""}), ([], {})],
)
def test_parse_inputs(pairs: list[str], expected: dict[str, str]) -> None:
    assert parse_inputs(pairs) == expected


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["moo"], "input 'moo' is invalid: allowed Key=Value"),
        (["1A=x"], "input '1A=x' is invalid"),
        (["A=1", "A=2"], "input 'A' is given twice"),
    ],
)
def test_bad_inputs(pairs: list[str], message: str) -> None:
    with pytest.raises(ModuleError, match=message):
        parse_inputs(pairs)


def test_lock_merges_entries(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    write_lock({"a:v1": "x"}, path)
    write_lock({"b:v1": "y"}, path)
    assert read_lock(path) == {"a:v1": "x", "b:v1": "y"}
    assert read_lock(tmp_path / "missing.json") == {}


def test_cli_render_prints_the_job_and_reports_refusals(lock: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["--lock", str(lock), "render", "cowsay:v1", "-i", "Message=moo"]) == 0
    assert json.loads(capsys.readouterr().out)["job"]["Spec"]["Docker"]["Entrypoint"][2] == "moo"
    assert cli(["--lock", str(lock), "render", "cowsay:v1", "-i", "Nope=1"]) == 2
    assert "input 'Nope' is not used by the template" in capsys.readouterr().err
    assert cli(["list"]) == 0
    assert capsys.readouterr().out.split() == EXAMPLES
