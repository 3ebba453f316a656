"""`[tool.harden]` in `pyproject.toml`: a project profile for repositories that keep their
tool settings there, as ruff and black read `[tool.ruff]` / `[tool.black]`.

The table holds what a `.harden.yaml` holds (same schema, `extends:` relative to the
file); a `.harden.yaml` in the same directory wins. A `pyproject.toml` without the table
is not a profile: the search goes on upwards.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from .config import Config, ConfigError

PYPROJECT = "pyproject.toml"


def has_table(path: Path) -> bool:
    """True when `path` is a readable pyproject.toml with a `[tool.harden]` table."""
    try:
        if not path.is_file() or path.stat().st_size > (1 << 20):
            return False
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False
    tool = data.get("tool")
    return isinstance(tool, dict) and isinstance(tool.get("harden"), dict)


def is_pyproject(ref: str) -> bool:
    return Path(ref).name == PYPROJECT


def read_table(text: str, file: str) -> Config:
    """The `[tool.harden]` table of a pyproject.toml's text, as profile configuration."""
    try:
        data: Any = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"profile {file}: invalid TOML: {exc}") from None
    table = data.get("tool", {}).get("harden") if isinstance(data.get("tool"), dict) else None
    if not isinstance(table, dict):
        raise ConfigError(f"profile {file}: no [tool.harden] table")
    return Config(table, "profile", f"{file} [tool.harden]")
