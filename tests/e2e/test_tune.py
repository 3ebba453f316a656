"""`harden tune` on the zoo: every stack, tuned, still does its job.

For each stack: `harden tune compose.yaml` (with the stack's exercise probe where its job
writes only on request, tests/e2e/zoo/exercise.py) must converge within its rounds and
write the file; then the tuned file is brought up and the stack's job check must pass.
Every value tune wrote rests on evidence (none on the profile default alone, except
no-new-privileges, which is the same for every service), and tune's projects are gone.

Without image facts (`--no-image-facts`) tune starts from the profile alone and has to
find what the images need from the regressions themselves: for the stacks where that
takes adjustments (a capability from an EPERM line, a control dropped with its evidence),
it must still converge within the rounds and leave the stack doing its job.

`python tests/bench/tune.py` prints the rounds and wall time per stack.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import images  # noqa: E402  (tests/e2e/images.py)
import zoo  # noqa: E402  (tests/e2e/zoo/)
from zoo.exercise import probe_args  # noqa: E402
from zoo.run import harden_command, host_port_lock, leftovers, prepare, run_stack  # noqa: E402

pytestmark = pytest.mark.engine

MAX_ROUNDS = 4


@pytest.fixture(scope="module")
def zoo_images() -> dict[str, str]:
    ok, reason = images.engine_available()
    if not ok:
        message = f"no Docker engine reachable: {reason}"
        if os.environ.get("HARDEN_REQUIRE_ENGINE") == "1":
            pytest.fail(message + " (HARDEN_REQUIRE_ENGINE=1)", pytrace=False)
        pytest.skip(message)
    return zoo.ensure_images()


def tune(compose: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    report = compose.parent / "tune.json"
    proc = subprocess.run([*harden_command(), "tune", compose.name, "--report", report.name, "--rounds", str(MAX_ROUNDS),
                           "--timeout", "60", *args], capture_output=True, text=True, cwd=compose.parent, timeout=1800)
    return proc, (json.loads(report.read_text()) if report.exists() else {})


@pytest.mark.parametrize("stack", zoo.STACKS, ids=lambda s: s.name)
def test_tune_then_the_job_passes(zoo_images, stack: zoo.ZooStack, tmp_path: Path, record_property) -> None:
    tune_and_job(stack, tmp_path, record_property)


ADJUSTED = ("s6-files", "uploader", "volume-data", "port80-filecap", "port80-host")


@pytest.mark.parametrize("name", ADJUSTED)
def test_tune_without_image_facts_adjusts_and_converges(zoo_images, name: str, tmp_path: Path, record_property) -> None:
    report = tune_and_job(zoo.BY_NAME[name], tmp_path, record_property, "--no-image-facts")
    assert report["rounds"] >= 2 and any(d["adjustments"] for d in report["round_details"]), report


def tune_and_job(stack: zoo.ZooStack, tmp_path: Path, record_property, *extra: str) -> dict:
    if stack.skip_reason():
        pytest.skip(stack.skip_reason())
    with host_port_lock(stack.host_port) if stack.host_port else contextlib.nullcontext():
        compose = prepare(stack, tmp_path / stack.name)
        consent = ["--yes"] if "network_mode: host" in stack.compose else []  # as its user would confirm
        proc, report = tune(compose, *probe_args(stack.name), *consent, *extra)
        torn = re.search(r"tearing down (.*)", proc.stderr)
        projects = torn.group(1).split(", ") if torn else []
        assert projects and not [x for p in projects for x in leftovers(p)]
        assert proc.returncode == 0 and report.get("converged") and report.get("written"), proc.stdout + proc.stderr
        record_property("tune_rounds", report["rounds"])
        record_property("tune_seconds", report["seconds"])
        print(f"\n{stack.name}: tune converged in {report['rounds']} round(s), {report['seconds']:.0f} s")
        job = run_stack(stack, compose.parent, "tuned")
    assert not job.leftovers
    assert job.ok, f"{stack.name} ({stack.behaves_like}) no longer does its job after harden tune\n{proc.stdout}\n{job.describe()}"
    assert 1 <= report["rounds"] <= MAX_ROUNDS
    resting_on_default = [c for c in report["changes"] if c["evidence"] == "default" and c["control"] != "no_new_privileges"]
    assert not resting_on_default, resting_on_default
    assert all(c["evidence"].startswith(("observed:", "image:", "declared:", "knowledge:", "x-harden", "default"))
               for c in report["changes"])
    return report
