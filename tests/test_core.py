"""Targeted behaviour of the core, beyond the fixture outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from hardener import document
from hardener.core import harden_text
from hardener.model import FINDINGS, Status
from hardener.passes import PASSES
from hardener.profile import load_profile
from hardener.view import ServiceView

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BASELINE = load_profile("baseline")


def harden(text: str):
    return harden_text(text, BASELINE)


def services(text: str) -> dict:
    return document.plain(YAML(typ="rt").load(text))["services"]


def test_user_is_always_quoted_and_yaml11_safe():
    out = harden("services:\n  app:\n    image: example/app\n").text
    assert 'user: "1000:1000"' in out
    assert document.plain(YAML(typ="safe", pure=True).load(out))["services"]["app"]["user"] == "1000:1000"


def test_every_control_applied_to_a_plain_service():
    svc = services(harden("services:\n  app:\n    image: example/app\n").text)["app"]
    assert svc["user"] == "1000:1000"
    assert svc["read_only"] is True
    assert svc["tmpfs"] == ["/tmp:size=64m,uid=1000,gid=1000,mode=1777,noexec,nosuid,nodev"]
    assert svc["cap_drop"] == ["ALL"]
    assert svc["security_opt"] == ["no-new-privileges:true"]
    assert (svc["mem_limit"], svc["cpus"], svc["pids_limit"]) == ("256m", 0.5, 100)


def test_pass_order_is_explicit():
    assert [p.ID for p in PASSES] == ["user", "read_only", "capabilities", "no_new_privileges", "resources"]
    for p in PASSES:
        assert "CIS" in p.__doc__ and "What can break" in p.__doc__ and "Before" in p.__doc__


def test_tmpfs_owned_by_the_planned_user():
    text = "services:\n  app:\n    image: example/app\n    x-harden:\n      user: '1234:5678'\n"
    svc = services(harden(text).text)["app"]
    assert svc["user"] == "1234:5678"
    assert "uid=1234,gid=5678" in svc["tmpfs"][0]


def test_never_weakens_existing_values():
    text = (FIXTURES / "capabilities/partial_cap_drop.yaml").read_text()
    svc = services(harden(text).text)
    assert svc["app"]["cap_drop"] == ["NET_RAW", "ALL"]
    assert svc["app"]["cap_add"] == ["NET_BIND_SERVICE"]
    assert svc["already"]["cap_drop"] == ["all"]
    assert "cap_add" not in svc["already"]


def test_read_only_false_is_kept_and_reported():
    result = harden((FIXTURES / "read_only/false_kept.yaml").read_text())
    assert services(result.text)["app"]["read_only"] is False
    assert any(s.control == "read_only" and "false" in s.reason for s in result.skips)


def test_no_second_mount_on_tmp():
    """/tmp already mounted (a long-syntax tmpfs volume, a bind mount): the root goes
    read-only and /tmp gets no tmpfs entry on top."""
    result = harden((FIXTURES / "read_only/tmpfs_volume_on_tmp.yaml").read_text())
    assert result.status is Status.CHANGED, result.message
    hardened = services(result.text)
    assert set(hardened) == {"app", "bind"}
    for svc in hardened.values():
        assert svc["read_only"] is True
        assert not any(str(t).startswith("/tmp") for t in svc.get("tmpfs", []))
    assert {c.service for c in result.changes if c.path == ("read_only",)} == {"app", "bind"}
    assert not [c for c in result.changes if c.path == ("tmpfs",)]


@pytest.mark.parametrize("entry", ["no-new-privileges", "no-new-privileges:true", "no-new-privileges=true", "no-new-privileges: true"])
def test_no_new_privileges_spellings_are_one_entry(entry):
    text = f"services:\n  app:\n    image: x\n    security_opt:\n      - \"{entry}\"\n"
    result = harden(text)
    svc = services(result.text)["app"]
    assert svc["security_opt"] == [entry]
    assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]  # the rest of the service is hardened
    assert not [c for c in result.changes if c.control == "no_new_privileges"]
    assert not [s for s in result.skips if s.control == "no_new_privileges"]


def test_merge_anchor_is_never_mutated():
    text = (FIXTURES / "edges/anchors_merge.yaml").read_text()
    out = harden(text).text
    tree = YAML(typ="rt").load(out)
    assert document.plain(tree["x-common"]) == {"restart": "unless-stopped", "read_only": False, "cap_drop": ["NET_RAW"]}
    assert tree["services"]["api"]["read_only"] is False
    assert tree["services"]["api"]["cap_drop"] == ["NET_RAW", "ALL"]


def test_anchored_service_changes_reach_its_merge_users_once():
    result = harden((FIXTURES / "edges/anchored_service.yaml").read_text())
    svc = services(result.text)
    assert svc["web2"]["cap_drop"] == ["ALL"]
    assert svc["web2"]["environment"] == {"MODE": "web2"}
    assert {c.service for c in result.changes} == {"web"}


def test_limits_in_one_form_only():
    result = harden((FIXTURES / "resources/deploy_form.yaml").read_text())
    for svc in services(result.text).values():
        assert not {"mem_limit", "cpus", "pids_limit"} & set(svc)
        assert set(svc["deploy"]["resources"]["limits"]) == {"memory", "cpus", "pids"}
    short = services(harden((FIXTURES / "resources/short_form.yaml").read_text()).text)["app"]
    assert short["mem_limit"] == "1g" and "deploy" not in short


def test_variables_count_as_set():
    result = harden((FIXTURES / "edges/variables.yaml").read_text())
    svc = services(result.text)["app"]
    assert svc["user"] == "${UID}"
    assert svc["read_only"] == "${READ_ONLY:-true}"
    assert "tmpfs" not in svc
    assert svc["security_opt"] == ["${SECURITY_OPT}", "no-new-privileges:true"]


def test_findings_name_their_lines():
    result = harden((FIXTURES / "findings/risks.yaml").read_text())
    found = {(f.kind, f.line) for f in result.findings}
    assert {kind for kind, _ in found} <= set(FINDINGS)
    assert found == {("host_namespace", 4), ("docker_socket", 5), ("unconfined", 7), ("dangerous_cap", 9)}


def test_privileged_is_reported_not_silently_dropped_caps():
    result = harden((FIXTURES / "capabilities/privileged.yaml").read_text())
    assert any(f.kind == "privileged" and f.line == 4 for f in result.findings)
    assert any(s.control == "capabilities" and "privileged" in s.reason for s in result.skips)
    assert "cap_drop" not in services(result.text)["agent"]


def test_v1_file_is_skipped_with_reason():
    result = harden((FIXTURES / "edges/v1_format.yaml").read_text())
    assert result.status is Status.SKIPPED and "v1" in result.message


def test_every_document_hardened_separators_kept():
    result = harden((FIXTURES / "edges/multi_document.yaml").read_text())
    assert result.text.count("\n---\n") == 1
    assert {c.service for c in result.changes} == {"a", "b"}


def test_new_keys_stay_above_next_service_comment():
    out = harden((FIXTURES / "edges/comments_between_services.yaml").read_text()).text
    lines = out.splitlines()
    comment = lines.index("  # The database. Keep this comment above db.")
    assert lines[comment + 1] == "  db:"
    assert lines.index("    pids_limit: 100") < comment
    assert lines[-1] == "# footer comment"


def test_crlf_bom_and_missing_newline_survive():
    crlf = harden((FIXTURES / "edges/crlf.yaml").read_bytes().decode()).text
    assert "read_only: true\r\n" in crlf and 'user: "1000:1000"\r\n' in crlf
    assert "\n" not in crlf.replace("\r\n", "")
    bom = harden((FIXTURES / "edges/bom_and_document_start.yaml").read_bytes().decode()).text
    assert bom.startswith("\ufeff---\n# leading comment\n") and bom.count("\ufeff") == 1
    assert "    read_only: true\n" in bom
    nonl = harden((FIXTURES / "edges/no_final_newline.yaml").read_text()).text
    assert "    read_only: true\n" in nonl
    assert not nonl.endswith("\n")


def test_image_knowledge_adjusts_values_and_is_reported():
    result = harden((FIXTURES / "images/known_images.yaml").read_text())
    svc = services(result.text)
    assert svc["db"]["user"] == "70:70"
    assert svc["web"]["cap_add"] == ["CHOWN", "SETUID", "SETGID"] and "user" not in svc["web"]
    assert svc["dash"]["user"] == "472:0"
    assert dict(result.matches) == {"db": "postgres-alpine", "cache": "redis-7", "web": "nginx", "dash": "grafana"}


def test_grafana_without_data_mount_keeps_a_writable_root():
    result = harden("services:\n  g:\n    image: grafana/grafana:11\n")
    assert "read_only" not in services(result.text)["g"]
    assert any(s.control == "read_only" and "/var/lib/grafana" in s.reason for s in result.skips)


def test_x_harden_unknown_key_is_an_error():
    result = harden("services:\n  a:\n    image: x\n    x-harden:\n      skp: [user]\n")
    assert result.status is Status.ERROR and "did you mean 'skip'" in result.message


def test_strict_profile_extends_baseline():
    strict = load_profile("strict")
    assert strict.user == BASELINE.user and strict.memory == "128m"
    assert strict.sources["resources.memory"] == "profile:strict"
    assert strict.sources["user"] == "profile:baseline"


def test_passes_are_pure_on_plain_views():
    from hardener.passes import resources
    from hardener.profile import resolve

    view = ServiceView("app", {"image": "x", "deploy": {"resources": {"limits": {"cpus": "1"}}}}, frozenset({"image", "deploy"}))
    planned = resources.plan(view, resolve(BASELINE, view))
    assert [c.path for c in planned] == [("deploy", "resources", "limits", "memory"), ("deploy", "resources", "limits", "pids")]


# --- the safety net: a wrong output is refused, never returned --------------------------

GOOD = "services:\n  app:\n    image: example/app:1.0\n"


def _damage_output(monkeypatch, damage) -> None:
    """Make the text the core assembles wrong in the way `damage` says (after the patch
    and the byte facts, where the safety net takes over)."""
    real = document.join_facts
    monkeypatch.setattr(document, "join_facts", lambda facts, text: damage(real(facts, text)))


def assert_refused(result, why: str) -> None:
    assert result.status is Status.ERROR, (result.status, result.text)
    assert result.message.startswith("refused") and why in result.message, result.message
    assert result.text == GOOD  # nothing of the wrong output gets out


def test_safety_net_refuses_output_that_does_not_parse(monkeypatch):
    _damage_output(monkeypatch, lambda text: text + "    labels: [unclosed\n")
    assert_refused(harden(GOOD), "does not parse")


def test_safety_net_refuses_output_with_other_data(monkeypatch):
    _damage_output(monkeypatch, lambda text: text.replace("example/app:1.0", "example/app:2.0"))
    assert_refused(harden(GOOD), "does not load to the intended data")


def test_safety_net_refuses_a_lost_value(monkeypatch):
    _damage_output(monkeypatch, lambda text: text.replace("    image: example/app:1.0\n", ""))
    assert_refused(harden(GOOD), "does not load to the intended data")


def test_safety_net_refuses_new_schema_errors(monkeypatch):
    from hardener.model import Change, Op
    from hardener.passes import user

    monkeypatch.setattr(user, "plan", lambda view, settings: [Change("user", view.name, ("user",), Op.SET, ["1000"], "test")])
    assert_refused(harden(GOOD), "compose-spec schema")


def test_safety_net_refuses_output_that_is_not_idempotent(monkeypatch):
    from hardener.model import Change, Op
    from hardener.passes import no_new_privileges

    calls = iter(range(1000))
    monkeypatch.setattr(no_new_privileges, "plan", lambda view, settings: [
        Change("no_new_privileges", view.name, ("security_opt",), Op.ADD, (f"label:level:s{next(calls)}",), "test")])
    assert_refused(harden(GOOD), "not idempotent")


def test_safety_net_passes_a_correct_output():
    """The net is not a no-op refusing everything: the same input hardens cleanly."""
    result = harden(GOOD)
    assert result.status is Status.CHANGED and "read_only: true" in result.text


# --- skipped controls: applied by the runner, the pass is never asked -------------------


def _never_planned(monkeypatch, *controls: str) -> None:
    from hardener.passes import BY_ID

    def refuse(view, settings):
        raise AssertionError(f"{view.name}: a skipped control was planned")

    for control in controls:
        monkeypatch.setattr(BY_ID[control], "plan", refuse)


def test_skip_from_the_command_line(monkeypatch):
    _never_planned(monkeypatch, "user", "resources")
    result = harden_text(GOOD, BASELINE, frozenset({"user", "resources"}))
    assert result.status is Status.CHANGED, result.message
    svc = services(result.text)["app"]
    assert not {"user", "mem_limit", "cpus", "pids_limit", "deploy"} & set(svc)
    assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"] and svc["security_opt"] == ["no-new-privileges:true"]
    assert {(s.control, s.service, s.reason) for s in result.skips} == {
        ("user", "app", "skipped on the command line"), ("resources", "app", "skipped on the command line")}
    assert {c.control for c in result.changes} == {"read_only", "capabilities", "no_new_privileges"}


def test_skip_from_x_harden_is_per_service(monkeypatch):
    text = GOOD + "    x-harden:\n      skip: [read_only, capabilities]\n  other:\n    image: example/app:1.0\n"
    result = harden(text)
    hardened = services(result.text)
    assert "read_only" not in hardened["app"] and "cap_drop" not in hardened["app"] and hardened["app"]["user"] == "1000:1000"
    assert hardened["other"]["read_only"] is True and hardened["other"]["cap_drop"] == ["ALL"]
    assert {(s.control, s.service) for s in result.skips} == {("read_only", "app"), ("capabilities", "app")}
    assert all("x-harden" in s.reason for s in result.skips)


def test_skip_from_the_image_knowledge_is_reported_with_its_reason():
    result = harden("services:\n  web:\n    image: nginx:1.25\n")
    assert "user" not in services(result.text)["web"]
    (skip,) = [s for s in result.skips if s.control == "user"]
    assert skip.service == "web" and "nginx" in skip.reason.lower()


def test_loading_services_that_merge_one_anchor_compares_no_mappings(monkeypatch):
    """ruamel.yaml's own record of the mappings that merge an anchor compares each new one
    with every one before it, by content: quadratic in the services that merge it. The
    package's record goes by identity, so a load compares no mappings at all."""
    from ruamel.yaml.comments import CommentedMap

    compared = []
    real = CommentedMap.__eq__
    monkeypatch.setattr(CommentedMap, "__eq__", lambda self, other: compared.append(1) or real(self, other))
    text = "x-a: &a\n  restart: always\nservices:\n" + "".join(f"  s{n}:\n    <<: *a\n    image: busybox\n" for n in range(200))
    _, documents = document.parse(text)
    anchor, section = documents[0].tree["x-a"], documents[0].tree["services"]
    assert len(anchor._ref) == 200 and all(any(ref is section[f"s{n}"] for ref in anchor._ref) for n in range(200))
    assert compared == []
