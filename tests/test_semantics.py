"""Compose value semantics where they change what harden does: booleans as Compose reads
them, mount targets with `${VAR:-default}`, what a service declares about its memory, the
author's own comments, a block scalar that ends the file, and the boundary."""

from __future__ import annotations

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from hardener import findings, oracle, safety
from hardener.cli import app
from hardener.core import harden_text
from hardener.model import Failure, Status
from hardener.profile import load_profile
from hardener.rewrite import edit
from hardener.values import boolean, is_root_user, mounted_targets, no_new_privileges

BASELINE = load_profile("baseline")
runner = CliRunner()


def harden(text: str):
    return harden_text(text, BASELINE)


def service(text: str, name: str = "a") -> dict:
    return YAML(typ="safe").load(text)["services"][name]


def controls(result) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {"changes": set(), "skips": set()}
    out["changes"] = {c.control for c in result.changes}
    out["skips"] = {s.control for s in result.skips}
    return out


@pytest.mark.parametrize("value", ['"true"', "yes", "on", "Y", '"True"'])
def test_privileged_as_compose_reads_it(value):
    result = harden(f"services:\n  a:\n    image: x\n    privileged: {value}\n")
    assert [f.kind for f in result.findings] == ["privileged"]
    assert {"user", "capabilities"} <= controls(result)["skips"]
    assert "cap_drop" not in service(result.text) and "user" not in service(result.text)


@pytest.mark.parametrize("value", ['"no"', "off", '"false"', "n"])
def test_read_only_false_spellings_are_kept_and_reported(value):
    text = f"services:\n  a:\n    image: x\n    read_only: {value}\n"
    result = harden(text)
    skips = [s for s in result.skips if s.control == "read_only"]
    assert skips and "set explicitly" in skips[0].reason
    assert str(service(result.text)["read_only"]).lower() == value.strip('"').lower()
    assert "tmpfs" not in service(result.text)


def test_boolean_table():
    assert [boolean(v) for v in (True, "yes", "ON", "y", "false", "Off", "n", "1", None, "${X}")] == \
        [True, True, True, True, False, False, False, None, None, None]
    assert is_root_user("0:0") and is_root_user("root") and not is_root_user("1000") and not is_root_user(["0"])
    assert no_new_privileges(["no-new-privileges:1"]) == "true" and no_new_privileges(["no-new-privileges=false"]) == "false"


def test_interpolated_volume_target_counts_as_a_mount():
    text = "services:\n  a:\n    image: x\n    volumes:\n      - ${TMPDIR:-/var/tmp}:/tmp\n      - ${DATA:-./d}:/data:rw\n"
    assert mounted_targets(service(text)) == {"/tmp", "/data"}
    out = service(harden(text).text)
    assert out["read_only"] is True
    assert not any(str(t).startswith("/tmp") for t in out.get("tmpfs", []))


@pytest.mark.skipif(oracle.compose_binary() is None, reason="Docker Compose v2 binary not installed")
def test_interpolated_volume_target_output_loads(tmp_path):
    text = "services:\n  a:\n    image: x\n    volumes:\n      - ${TMPDIR:-/var/tmp}:/tmp\n"
    result = harden(text)
    assert result.status is Status.CHANGED
    assert oracle.check(text, result.text, str(tmp_path)) is None


def test_author_commented_out_user_is_a_skip_with_the_comment():
    text = ("services:\n  a:\n    image: x\n    # not working rootless yet\n    #user: 1000:1000\n"
            "    ports: [\"80:80\"]\n  b:\n    image: y\n")
    result = harden(text)
    assert "user" not in service(result.text, "a")
    assert service(result.text, "b")["user"] == "1000:1000"
    reason = next(s.reason for s in result.skips if s.service == "a" and s.control == "user")
    assert "#user: 1000:1000" in reason and "not working rootless yet" in reason
    assert service(result.text, "a")["read_only"] is True  # only that control is left alone


def test_author_note_against_read_only():
    result = harden("services:\n  a:\n    image: x\n    # read_only breaks the upload cache\n    command: run\n")
    assert "read_only" not in service(result.text)
    assert any(s.control == "read_only" and "breaks the upload cache" in s.reason for s in result.skips)


def test_x_harden_overrides_the_authors_comment():
    text = "services:\n  a:\n    image: x\n    #user: 1000:1000\n    x-harden:\n      user: \"2000:2000\"\n"
    assert service(harden(text).text)["user"] == "2000:2000"


def test_unrelated_comments_are_no_signal():
    text = ("services:\n  a:\n    image: x\n    # user: \"john@example.test\" password: \"secret\"\n"
            "    # the user interface breaks on old browsers? no, that is about the app\n    command: run\n")
    result = harden(text)
    assert service(result.text)["user"] == "1000:1000"


def test_block_scalar_ending_the_file_keeps_its_value():
    text = "services:\n  a:\n    image: x\n    command: |\n      echo hi"
    result = harden(text)
    assert result.status is Status.CHANGED
    assert service(result.text)["command"] == service(text)["command"] == "echo hi"
    assert result.text.endswith("    command: |\n      echo hi")  # no final newline added, block still last
    assert harden(result.text).status is Status.UNCHANGED


def test_safety_net_refuses_a_value_changed_by_normalisation(monkeypatch):
    monkeypatch.setattr(edit, "_last_block_key", lambda services: None)  # append after the block again
    result = harden("services:\n  a:\n    image: x\n    command: |\n      echo hi")
    assert result.status is Status.ERROR and result.failure is Failure.REFUSED
    assert "intended data" in result.message


def test_safety_net_does_not_trust_an_empty_deepdiff():
    with pytest.raises(Exception, match="intended data"):
        safety.check([{"a": "x"}], [{"a": "x"}], "a: 'x\n\n  '\n", lambda: [])


@pytest.mark.parametrize("env, limit", [
    ("ES_JAVA_OPTS: -Xms4g -Xmx4g", "6g"),
    ("KAFKA_HEAP_OPTS: -Xmx512m", "768m"),
    ('NODE_OPTIONS: "--max-old-space-size=2048"', "3g"),
    ('ES_JAVA_OPTS: ${ES_JAVA_OPTS:-"-Xms1g -Xmx1g"}', "1536m"),
])
def test_memory_limit_never_below_a_declared_heap(env, limit):
    result = harden(f"services:\n  a:\n    image: x\n    environment:\n      {env}\n")
    assert service(result.text)["mem_limit"] == limit
    change = next(c for c in result.changes if c.path == ("mem_limit",))
    assert change.evidence.startswith("declared:environment.")


def test_memory_limit_from_the_command_line():
    result = harden("services:\n  a:\n    image: memcached:1.6\n    command: memcached -m 512\n")
    assert service(result.text)["mem_limit"] == "640m"


def test_heap_in_a_variable_without_default_is_a_skip():
    result = harden("services:\n  a:\n    image: x\n    environment:\n      - JAVA_OPTS=-Xmx${HEAP}\n")
    assert "mem_limit" not in service(result.text) and "cpus" in service(result.text)
    assert any(s.control == "resources" and "-Xmx${HEAP}" in s.reason for s in result.skips)


def test_limits_the_engine_would_refuse_are_not_written():
    text = ("services:\n  a:\n    image: x\n    mem_reservation: 512m\n    cpu_quota: 50000\n"
            "  b:\n    image: x\n    deploy:\n      resources:\n        reservations:\n          memory: 1G\n          cpus: '2'\n")
    result = harden(text)
    a, b = service(result.text, "a"), service(result.text, "b")
    assert a["mem_limit"] == "512m" and "cpus" not in a
    assert any(s.service == "a" and "cpu_quota" in s.reason for s in result.skips)
    assert b["mem_limit"] == "1g" and float(b["cpus"]) >= 2  # never below what it reserves


def test_internal_error_is_one_result_not_a_traceback(monkeypatch):
    def boom(*args, **kwargs):
        raise ZeroDivisionError("planted")
    monkeypatch.setattr(findings, "scan", boom)
    result = harden("services:\n  a:\n    image: x\n")
    assert result.status is Status.ERROR and result.failure is Failure.INTERNAL
    assert "ZeroDivisionError: planted" in result.message
    cli = runner.invoke(app, ["fix", "-"], input="services:\n  a:\n    image: x\n")
    assert cli.exit_code == 2 and "internal error" in cli.stderr and "Traceback" not in cli.output


STACK = """version: "3.8"
services:
  web:
    image: x
    deploy:
      replicas: 2
      placement:
        constraints: [node.role == worker]
"""


def test_swarm_stack_file_gets_only_what_docker_stack_deploy_accepts():
    result = harden(STACK)
    web = service(result.text, "web")
    assert not {"mem_limit", "cpus", "pids_limit", "security_opt"} & set(web)
    limits = web["deploy"]["resources"]["limits"]
    assert limits == {"memory": "256M", "cpus": "0.5"}  # cpus a string; pids needs format 3.9
    assert "cpus: '0.5'" in result.text or 'cpus: "0.5"' in result.text
    reasons = {s.control: s.reason for s in result.skips}
    assert "security_opt" in reasons["no_new_privileges"] and "3.9" in reasons["resources"]
    newer = service(harden(STACK.replace('"3.8"', '"3.9"')).text, "web")
    assert newer["deploy"]["resources"]["limits"]["pids"] == 100


@pytest.mark.skipif(not __import__("shutil").which("docker"), reason="docker CLI not installed")
def test_swarm_output_passes_docker_stack_config(tmp_path):
    import subprocess
    probe = subprocess.run(["docker", "stack", "config", "--help"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("this docker CLI has no `stack config` (Docker CLI 23 or newer)")
    for text in (STACK, STACK.replace('"3.8"', '"3.9"'), STACK.replace('version: "3.8"\n', "")):
        path = tmp_path / "stack.yaml"
        path.write_text(harden(text).text)
        done = subprocess.run(["docker", "stack", "config", "-c", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


def test_every_change_says_what_it_rests_on():
    result = harden("services:\n  db:\n    image: postgres:16\n  app:\n    image: example/app\n    x-harden:\n      memory: 1g\n")
    by = {(c.service, c.path): c.evidence for c in result.changes}
    assert by[("db", ("user",))] == "knowledge:postgres"
    assert by[("app", ("user",))] == "default"
    assert by[("app", ("mem_limit",))] == "x-harden"
    assert all(c.evidence for c in result.changes)


@pytest.mark.parametrize("image, user, skipped", [
    ("postgres:${POSTGRES_IMAGE_TAG}", None, "70:70"),
    ("postgres:${TAG:-16-alpine}", "70:70", None),
    ("postgres:${TAG:-16}", "999:999", None),
    ("redis:${TAG}", None, "999:1000"),
    ("docker.elastic.co/elasticsearch/elasticsearch-wolfi:8.15.0", "1000:0", None),
    ("mirror.gcr.io/library/redis:7-alpine", "999:1000", None),
])
def test_variable_tags_and_variants(image, user, skipped):
    result = harden(f"services:\n  a:\n    image: {image}\n")
    out = service(result.text)
    assert out.get("user") == user
    if skipped:
        reason = next(s.reason for s in result.skips if s.control == "user")
        assert "variable" in reason and skipped in reason


@pytest.mark.parametrize("image, env, limit", [
    ("elasticsearch:8.15.0", "ES_JAVA_OPTS: -Xms4g -Xmx4g", "6g"),
    ("docker.elastic.co/elasticsearch/elasticsearch-wolfi:8.15.0", "ES_JAVA_OPTS: -Xms1g -Xmx1g", "2g"),
    ("example/kafka:3", "KAFKA_HEAP_OPTS: -Xmx512m", "768m"),
])
def test_memory_never_below_the_heap_of_known_and_unknown_images(image, env, limit):
    out = service(harden(f"services:\n  a:\n    image: {image}\n    environment:\n      {env}\n").text)
    assert out["mem_limit"] == limit
