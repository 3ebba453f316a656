"""On a real Docker engine: the limits harden writes beside what a service already sets
are limits the engine accepts, and they are what harden says.

Compose accepts every one of these files, hardened or not; the engine refuses a memory
limit below a memory reservation or above `memswap_limit`, and `cpus` beside `cpu_quota` /
`cpu_period`. Each service here is hardened with the baseline profile, brought up alone
(`docker compose up -d`) and must be running, with the memory limit the report names.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import images  # noqa: E402  (tests/e2e/images.py)
from hardener.core import harden_text
from hardener.model import Status
from hardener.profile import load_profile

pytestmark = pytest.mark.engine

MIB = 1024 * 1024

# (id, the service's own settings, the memory limit the engine must show (bytes; 0: none), what the report must say)
CASES = [
    ("mem-reservation", "    mem_reservation: 512m\n", 512 * MIB, "mem_limit"),
    ("deploy-reservation", "    deploy:\n      resources:\n        reservations:\n          memory: 512M\n", 512 * MIB, "mem_limit"),
    ("deploy-limits-reservation", "    deploy:\n      resources:\n        limits:\n          cpus: '0.5'\n"
                                  "        reservations:\n          memory: 512M\n", 512 * MIB, "deploy.resources.limits.memory"),
    ("memswap-below", "    memswap_limit: 200m\n", 200 * MIB, "mem_limit"),
    ("memswap-above", "    memswap_limit: 1g\n", 256 * MIB, "mem_limit"),
    ("cpu-quota", "    cpu_quota: 50000\n", 256 * MIB, "cpu_quota is set"),
    ("cpu-period", "    cpu_period: 100000\n", 256 * MIB, "cpu_period is set"),
    ("cpu-count-percent", "    cpu_count: 1\n    cpu_percent: 50\n", 256 * MIB, "cpus"),
    ("shm-size", "    shm_size: 512m\n", 768 * MIB, "mem_limit"),
    ("pids-unlimited", "    pids_limit: 0\n", 256 * MIB, "pids_limit: 0 means no pids limit"),
]


@pytest.fixture(scope="module", autouse=True)
def _engine(engine: dict[str, str]) -> dict[str, str]:
    """Skip (or, with HARDEN_REQUIRE_ENGINE=1, fail) the module when no engine is reachable."""
    return engine


def compose(directory: Path, project: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [images.compose_bin(), "-f", str(directory / "compose.yaml"), "-p", project, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=directory)


@pytest.mark.parametrize("label,settings,memory,said", CASES, ids=[c[0] for c in CASES])
def test_hardened_limits_start_on_the_engine(tmp_path: Path, label: str, settings: str, memory: int, said: str) -> None:
    original = f"services:\n  box:\n    image: {images.IMAGES['busybox']}\n{settings}"
    result = harden_text(original, load_profile("baseline"))
    assert result.status is Status.CHANGED, result.message
    reported = [c.describe() for c in result.changes] + [s.reason for s in result.skips]
    assert any(said in r for r in reported), reported
    (tmp_path / "compose.yaml").write_text(result.text)
    project = f"harden-e2e-limits-{label}-{uuid.uuid4().hex[:6]}"
    try:
        up = compose(tmp_path, project, "up", "-d")
        assert up.returncode == 0, f"the engine refuses the hardened service:\n{result.text}\n{up.stderr[-1500:]}"
        ids = compose(tmp_path, project, "ps", "-a", "-q", "box").stdout.split()
        assert ids, "no container"
        inspect = json.loads(subprocess.run(["docker", "inspect", ids[0]], capture_output=True, text=True, check=True).stdout)[0]
        assert inspect["State"]["Running"], inspect["State"]
        host = inspect["HostConfig"]
        assert host["Memory"] == memory, (host["Memory"], result.text)
        assert host["Memory"] >= (host.get("MemoryReservation") or 0)
        swap = host.get("MemorySwap") or 0
        assert swap <= 0 or swap >= host["Memory"]
    finally:
        compose(tmp_path, project, "down", "-v", "--timeout", "5")
