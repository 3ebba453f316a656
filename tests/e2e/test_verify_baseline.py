"""`harden verify` judges function against a run of the original, on a real engine.

* Every broken variant of tests/e2e/zoo/broken.py (a zoo stack hardened wrongly on purpose:
  read_only without a needed tmpfs, a user that cannot write its volume, a memory limit
  under the heap, cap_drop ALL on a file-capability binary, a PID limit under what the
  entrypoint forks) makes `verify --as-is` fail, naming the service and the control, and
  prints the fix a rerun confirmed.
* `harden fix` output of every zoo stack passes `verify --as-is` (baseline: the file without
  the hardening keys).
* `verify FILE` (hardened in memory) on a stack with a named volume also runs the upgrade in
  place; a host `--probe` that fails is a FAIL.

Each run tears its projects down; nothing labelled with them is left.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import images  # noqa: E402  (tests/e2e/images.py)
import zoo  # noqa: E402  (tests/e2e/zoo/)
from zoo import broken  # noqa: E402
from zoo.run import harden_command, harden_fix, host_port_lock, leftovers, prepare  # noqa: E402

pytestmark = pytest.mark.engine

PROJECT = re.compile(r"project (harden-verify-[0-9a-f]+)")


@pytest.fixture(scope="module")
def zoo_images() -> dict[str, str]:
    ok, reason = images.engine_available()
    if not ok:
        message = f"no Docker engine reachable: {reason}"
        if os.environ.get("HARDEN_REQUIRE_ENGINE") == "1":
            pytest.fail(message + " (HARDEN_REQUIRE_ENGINE=1)", pytrace=False)
        pytest.skip(message)
    return zoo.ensure_images()


def verify(directory: Path, *args: str, timeout: float = 600) -> tuple[int, str, str, list[str]]:
    """(exit code, stdout, stderr, projects) of `harden verify compose.yaml ARGS`."""
    proc = subprocess.run([*harden_command(), "verify", "compose.yaml", *args], capture_output=True, text=True,
                          cwd=directory, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr, sorted(set(PROJECT.findall(proc.stderr)))


def _clean(projects: list[str]) -> None:
    assert projects, "verify named no project"
    left = [item for p in projects for item in leftovers(p)]
    assert not left, left


@contextlib.contextmanager
def _serialised(stack: zoo.ZooStack):
    if stack.skip_reason():
        pytest.skip(stack.skip_reason())
    with host_port_lock(stack.host_port) if stack.host_port else contextlib.nullcontext():
        yield


@pytest.mark.parametrize("variant", broken.BROKEN, ids=lambda b: b.name)
def test_verify_fails_on_a_broken_variant(zoo_images, variant: broken.Broken, tmp_path: Path) -> None:
    stack = zoo.BY_NAME[variant.stack]
    compose = prepare(stack, tmp_path / variant.name, variant.compose)
    code, out, err, projects = verify(compose.parent, "--as-is", "--timeout", "60")
    _clean(projects)
    assert code == 1, out + err
    named = [line for line in out.splitlines() if re.match(rf"\s+{variant.service} \((fresh start|upgrade)\): .*\[control {variant.control}\]$", line)]
    assert named, f"{variant.name} ({variant.breakage}): no regression naming {variant.service} / {variant.control}\n{out}\n{err}"
    if variant.fix:
        fixes = out.split("verified fixes", 1)[1] if "verified fixes" in out else ""
        assert variant.fix in fixes, f"{variant.name}: no verified fix with {variant.fix!r}\n{out}"


@pytest.mark.parametrize("stack", zoo.STACKS, ids=lambda s: s.name)
def test_verify_passes_on_fix_output(zoo_images, stack: zoo.ZooStack, tmp_path: Path) -> None:
    with _serialised(stack):
        compose = prepare(stack, tmp_path / stack.name)
        fixed = harden_fix(compose)
        assert fixed.rc == 0, fixed.stderr
        consent = ["--yes"] if "network_mode: host" in stack.compose else []  # as its user would confirm
        code, out, err, projects = verify(compose.parent, "--as-is", "--timeout", "60", *consent)
    _clean(projects)
    assert code == 0, f"{stack.name}: verify failed on harden fix output\n{fixed.summary()}\n{out}\n{err}"
    assert "compared with the original" in out and "\nOK: " in out


def test_verify_in_memory_runs_the_upgrade_in_place(zoo_images, tmp_path: Path) -> None:
    stack = zoo.BY_NAME["gosu-db"]
    compose = prepare(stack, tmp_path / stack.name)
    before = compose.read_bytes()
    code, out, err, projects = verify(compose.parent, "--timeout", "60")
    _clean(projects)
    assert code == 0, out + err
    assert compose.read_bytes() == before  # verify never writes the file
    assert "upgrade in place" in err and "after an upgrade in place" in out
    assert re.search(r"^db\s+999:999\s", out, re.M), out  # hardened as fix would: the uid it drops to


def test_a_failing_host_probe_is_a_failure(zoo_images, tmp_path: Path) -> None:
    stack = zoo.BY_NAME["app-home"]
    compose = prepare(stack, tmp_path / stack.name)
    probe = 'test -n "$HARDEN_PORT_APP_8080" && exit 3'
    code, out, err, projects = verify(compose.parent, "--timeout", "60", "--probe", probe)
    _clean(projects)
    assert code == 1, out + err
    assert re.search(r"host \(fresh start\): probe `.*` exited 3 \(it fails on the original too\)", out), out
