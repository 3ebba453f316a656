"""Configuration checks: one validator and three schemas (profile, x-harden, images.yaml).

Every configuration error is one line that names the file (or the service), the
line:column of the offending YAML node and the key path, with a did-you-mean for a
misspelt key or control id. The controls come from the pass registry alone.
"""

from __future__ import annotations

import json

import types
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from hardener import config_schemas, profile
from hardener.cli import app
from hardener.config import ConfigError, read_yaml
from hardener.images import load_config
from hardener.passes import CONTROLS, PASSES
from hardener.profile import load_profile, resolve
from hardener.values import CAPABILITIES
from hardener.view import ServiceView

runner = CliRunner()


def run(*args: str, stdin: str | None = None):
    return runner.invoke(app, list(args), input=stdin)


def x_harden(block: str) -> str:
    """A one-service Compose file whose x-harden block is `block` (lines at 6 spaces)."""
    return "services:\n  a:\n    image: x\n    x-harden:\n" + "".join(f"      {line}\n" for line in block.splitlines())


def errors(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if ": error:" in line]


# --- x-harden, through the command line ---------------------------------------------------


def test_x_harden_bad_pids_is_one_error_line_with_its_position():
    result = run("fix", "-", stdin=x_harden("pids: lots"))
    assert result.exit_code == 2, result.output
    assert errors(result) == ["-:5:13: error: service 'a': x-harden.pids: must be an integer, got 'lots'"]
    assert "Traceback" not in result.output
    assert result.stdout == x_harden("pids: lots")  # echoed unchanged: a pipe never loses the file


@pytest.mark.parametrize(
    "block, line, col, key, written",
    [
        ("memory: [1]", 5, 15, "memory", "mem_limit"),
        ("user: [1]", 5, 13, "user", "user: "),
        ("cpus: [1]", 5, 13, "cpus", "cpus:"),
        ("tmpfs: /tmp", 5, 14, "tmpfs", "tmpfs:"),
        ("cap_add: [1]", 5, 17, "cap_add[0]", "cap_add:"),
        ("memory: lots", 5, 15, "memory", "mem_limit"),
        ("skip: nothing", 5, 13, "skip", "cap_drop"),
    ],
)
def test_x_harden_values_of_the_wrong_kind_are_bad_configuration(block: str, line: int, col: int, key: str, written: str):
    """`memory: [1]` once wrote `mem_limit: '[1]'`, `user: [1]` wrote `user: "[1]"`."""
    result = run("fix", "--no-compose-check", "-", stdin=x_harden(block))
    assert result.exit_code == 2, result.output
    (error,) = errors(result)
    assert error.startswith(f"-:{line}:{col}: error: service 'a': x-harden.{key}: "), error
    assert result.stdout == x_harden(block)  # echoed unchanged, nothing written from the bad value


def test_x_harden_unknown_key_and_control_suggest_the_right_one():
    result = run("fix", "--no-compose-check", "-", stdin=x_harden("memroy: 1g"))
    assert result.exit_code == 2
    assert errors(result) == ["-:5:15: error: service 'a': x-harden: unknown key 'memroy' (did you mean 'memory'?)"]
    result = run("fix", "--no-compose-check", "-", stdin=x_harden("skip: [user, read_onyl]"))
    (error,) = errors(result)
    assert error.startswith("-:5:20: error: service 'a': x-harden.skip[1]: unknown control 'read_onyl' (did you mean 'read_only'?)")


def test_x_harden_not_a_mapping():
    result = run("fix", "--no-compose-check", "-", stdin="services:\n  a:\n    image: x\n    x-harden: [user]\n")
    assert errors(result) == ["-:4:15: error: service 'a': x-harden: must be a mapping, got a list (['user'])"]


def test_x_harden_values_that_were_accepted_still_are():
    block = "user: 1000\nmemory: 1g\ncpus: '1'\npids: '50'\nskip: read_only\ntmpfs: ['/cache:size=8m']\ncap_add: [CHOWN]"
    result = run("fix", "--no-compose-check", "-", stdin=x_harden(block))
    assert result.exit_code == 0, result.output
    for line in ('    user: "1000"', "    mem_limit: 1g", "    cpus: 1.0", "    pids_limit: 50", "      - CHOWN"):
        assert line in result.stdout.splitlines(), result.stdout
    assert "read_only: true" not in result.stdout


# --- profile files ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, where, message",
    [
        ("extends: baseline\nresources:\n  memroy: 1g\n", "3:11", "resources: unknown key 'memroy' (did you mean 'memory'?)"),
        ("extends: baseline\nresources:\n  pids: many\n", "3:9", "resources.pids: must be an integer, got 'many'"),
        ("user: [1]\n", "1:7", "user: must be a string, got a list ([1])"),
        ("skip: [usr]\n", "1:8", "skip[0]: unknown control 'usr' (did you mean 'user'?)"),
        ("tmpfs:\n  paths:\n    - path: /tmp\n      ownr: root\n", "4:13", "tmpfs.paths[0]: unknown key 'ownr' (did you mean 'owner'?)"),
        ("- baseline\n", "1:1", "must be a mapping, got a list"),
        ("resources: [\n", "2:1", "invalid YAML"),
    ],
)
def test_profile_file_errors_name_file_line_and_column(tmp_path: Path, content: str, where: str, message: str):
    prof = tmp_path / "mine.yaml"
    prof.write_text(content)
    compose = tmp_path / "compose.yaml"
    compose.write_text("services:\n  a:\n    image: x\n")
    result = run("fix", "--profile", str(prof), str(compose))
    assert result.exit_code == 2
    (line,) = [line for line in result.stderr.splitlines() if "error" in line]
    assert line.startswith(f"harden: error: profile {prof}:{where}: {message}"), line
    with pytest.raises(ConfigError) as info:
        load_profile(str(prof))
    assert info.value.line is None and info.value.position == tuple(int(n) for n in where.split(":"))


def test_profile_for_is_a_bounded_cache():
    assert not hasattr(profile, "_loaded")
    assert profile._load_version.cache_info().maxsize is not None


# --- images.yaml --------------------------------------------------------------------------

ENTRY = "  - id: {id}\n    title: T\n    repositories: [{repo}]\n    notes: ''\n    sources: [P1]\n"


def images(*entries: str) -> str:
    return "version: 1\nimages:\n" + "".join(entries)


@pytest.mark.parametrize(
    "text, where, message",
    [
        (images(ENTRY.format(id="a", repo="a") + "    user: 0:0\n"), "8:11", "images[0] ('a').user: '0:0' is root"),
        (images(ENTRY.format(id="a", repo="a") + "    skip: {reed_only: x}\n"), "8:23",
         "images[0] ('a').skip: unknown control 'reed_only' (did you mean 'read_only'?)"),
        (images(ENTRY.format(id="a", repo="a") + "    cap_add: [CHOWN, chown]\n"), "8:22",
         "images[0] ('a').cap_add[1]: unknown capability 'chown' (upper case, no CAP_ prefix) (did you mean 'CHOWN'?)"),
        (images(ENTRY.format(id="a", repo="a") + "    colour: blue\n"), "8:13", "images[0] ('a'): unknown key 'colour'"),
        (images(ENTRY.format(id="a", repo="a"), ENTRY.format(id="a", repo="b")), "8:9",
         "images[1] ('a').id: duplicate id (first at images[0])"),
        (images(ENTRY.format(id="a", repo="a"), ENTRY.format(id="a-alpine", repo="a") + "    tags: ['*alpine*']\n"), "8:5",
         "images[1] ('a-alpine'): unreachable"),
        (images(ENTRY.format(id="a", repo="a") + "    tmpfs: [/data]\n    requires_mounts: [/data]\n"), "9:22",
         "images[0] ('a').requires_mounts: ['/data'] cannot be both a tmpfs and a required data mount"),
        (images(ENTRY.format(id="a", repo="a").replace("title: T", "title: [T]")), "4:12", "images[0] ('a').title: must be a non-empty string"),
    ],
)
def test_images_yaml_errors_name_file_line_and_column(text: str, where: str, message: str):
    with pytest.raises(ConfigError) as info:
        load_config(read_yaml(text, "kb/images.yaml"))
    assert str(info.value).startswith(f"kb/images.yaml:{where}: {message}"), str(info.value)


# --- the schemas, assembled from the pass registry ----------------------------------------


@pytest.mark.parametrize("surface", ["profile", "x-harden", "images"])
def test_schemas_are_valid_and_take_the_controls_from_the_registry(surface: str):
    schema = config_schemas.schema(surface)
    Draft202012Validator.check_schema(schema)
    assert schema["$defs"]["control"]["enum"] == list(CONTROLS)


def test_every_pass_declares_its_own_keys():
    profile_keys = set(config_schemas.schema("profile")["properties"])
    x_harden_keys = set(config_schemas.schema("x-harden")["properties"])
    for module in PASSES:
        assert set(getattr(module, "PROFILE", {})) <= profile_keys
        assert set(getattr(module, "X_HARDEN", {})) <= x_harden_keys
    common = set(json.loads((Path(__file__).resolve().parents[1] / "profiles" / "x-harden.schema.json").read_text())["properties"])
    assert x_harden_keys == common | {key for module in PASSES for key in getattr(module, "X_HARDEN", {})}
    assert {"user", "tmpfs", "cap_add", "memory", "cpus", "pids"} <= x_harden_keys - common  # each from its pass
    assert config_schemas.schema("images")["$defs"]["capability"]["enum"] == list(CAPABILITIES)


@pytest.fixture
def new_control(monkeypatch, tmp_path: Path):
    """A control added by a pass module alone: its id, profile section and x-harden key."""
    module = types.SimpleNamespace(
        ID="seccomp",
        PROFILE={"seccomp": {"type": "object", "properties": {"profile": {"type": "string"}}, "additionalProperties": False}},
        X_HARDEN={"seccomp": {"type": "string"}},
    )
    import hardener.passes as passes

    monkeypatch.setattr(passes, "PASSES", (*passes.PASSES, module))
    monkeypatch.setattr(passes, "CONTROLS", (*passes.CONTROLS, module.ID))
    config_schemas.validator.cache_clear()
    prof = tmp_path / "mine.yaml"
    prof.write_text("seccomp:\n  profile: default.json\n")  # the defaults baseline.yaml would hold
    yield load_profile(str(prof))
    config_schemas.validator.cache_clear()


def test_a_new_control_needs_only_its_pass_module(new_control):
    view = ServiceView("a", {"image": "x", "x-harden": {"seccomp": "strict.json", "skip": ["seccomp"]}}, frozenset({"image", "x-harden"}))
    settings = resolve(new_control, view)
    assert settings.profile["seccomp"] == {"profile": "default.json"}
    assert settings.x_harden["seccomp"] == "strict.json"
    assert settings.skip["seccomp"] == "skipped by x-harden in the file"
    bad = ServiceView("a", {"image": "x", "x-harden": {"seccomp": 1}}, frozenset({"image", "x-harden"}))
    with pytest.raises(ConfigError, match="x-harden.seccomp: must be a string"):
        resolve(new_control, bad)


# --- the shipped files: held to their schemas here, not again on every start -------------


@pytest.mark.parametrize("name", profile.builtin_names())
def test_each_built_in_profile_holds_to_the_profile_schema(name: str):
    file = profile.data_dir().joinpath(f"{name}.yaml")
    read_yaml(file.read_text(encoding="utf-8"), str(file), "profile").check(config_schemas.validator("profile"))


def test_the_shipped_images_yaml_holds_to_its_schema():
    file = profile.data_dir().joinpath("images.yaml")
    read_yaml(file.read_text(encoding="utf-8"), str(file)).check(config_schemas.validator("images"))


def test_a_profile_file_is_still_checked_on_every_load(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("resources:\n  memroy: 1g\n")
    with pytest.raises(ConfigError, match=r"p.yaml:2:\d+: resources: unknown key .memroy. \(did you mean .memory.\?\)"):
        load_profile(str(bad))
