"""Lilypad-compatible modules: `name:tag` resolved to a template, rendered with JSON-encoded inputs, validated
into a JobSpec; example modules and their locally built, digest-pinned images."""

from live.modules.registry import ModuleError, available, load_module, parse_inputs, resolve
from live.modules.spec import JobSpec, Limits, Machine

__all__ = ["JobSpec", "Limits", "Machine", "ModuleError", "available", "load_module", "parse_inputs", "resolve"]
