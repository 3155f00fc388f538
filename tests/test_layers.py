"""The import contracts cover every module: each sits in a layer of pyproject.toml's
`layers` contract, or is one of the shared modules that contract names. A module in no
layer would be checked by nothing (import-linter ignores it)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run by Alembic from their path, never imported by the package.
NOT_IMPORTED = ("reconciler.migrations",)


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return list(config["tool"]["importlinter"]["contracts"])


def _layered() -> set[str]:
    names: set[str] = set()
    for contract in _contracts():
        if contract["type"] == "layers":
            for layer in contract["layers"]:  # type: ignore[attr-defined]
                for part in layer.replace(":", "|").split("|"):
                    names.add(part.strip())
    return names


def _shared() -> set[str]:
    for contract in _contracts():
        if str(contract["name"]).startswith("The shared modules"):
            return set(contract["source_modules"])  # type: ignore[call-overload]
    raise AssertionError("no contract for the shared modules")


def _modules() -> list[str]:
    package = ROOT / "reconciler"
    found = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append(".".join(parts))
    return found


def _covered(module: str, names: set[str]) -> bool:
    return any(module == name or module.startswith(name + ".") for name in names)


def test_every_module_is_in_a_layer_or_shared() -> None:
    names = _layered() | _shared() | set(NOT_IMPORTED)
    uncovered = [
        module
        for module in _modules()
        if module not in ("reconciler", "reconciler.spec") and not _covered(module, names)
    ]
    assert uncovered == [], f"add these to a layer in pyproject.toml: {uncovered}"
