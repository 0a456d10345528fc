"""Compose configs from the repository's Hydra tree, inside a running Hydra app or outside one (tests, notebooks).

Mechanisms are named as on the command line: a preset of `configs/mechanism/` (`lilypad_v2`), or one found on an
extra search path (`hydra.searchpath`), e.g. the winner a search wrote to `<sweep dir>/mechanism/<name>.yaml`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def compose_plain(config_name: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The config Hydra would give the app `config_name` with `overrides`, as a plain resolved mapping."""
    if GlobalHydra.instance().is_initialized():
        cfg = compose(config_name=config_name, overrides=list(overrides))
    else:
        with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=list(overrides))
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("hydra", None)
    return plain


def searchpath_override(dirs: Sequence[str | Path]) -> list[str]:
    """`hydra.searchpath=[file://...]` for extra config directories (none: no override)."""
    if not dirs:
        return []
    return ["hydra.searchpath=[" + ",".join(f"file://{Path(d).resolve()}" for d in dirs) + "]"]


def mechanism(name: str, searchpath: Sequence[str | Path] = ()) -> dict[str, Any]:
    """The mechanism section of preset (or searched mechanism) `name`."""
    return compose_plain("simulate", [f"mechanism={name}", *searchpath_override(searchpath)])["mechanism"]


def group(name: str, option: str) -> dict[str, Any]:
    """One option of a config group (e.g. `group("market", "threshold")`)."""
    return compose_plain("simulate", [f"{name}={option}"])[name]
