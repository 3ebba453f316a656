"""Pure tests of the functional proof: signatures, the comparison of a hardened run with the
original's, the fixes and their application, what a run teaches `tune`, and the observed
layer of evidence. Runs are built by hand (`Seen`, `StackRun`); no engine."""

from __future__ import annotations

from dataclasses import replace

import pytest
import yaml

from hardener.core import harden_text
from hardener.model import Project, Status
from hardener.observed import Observed
from hardener.profile import load_profile
from hardener.tune import learn
from hardener.tune.adjust import Tuning
from hardener.verify import signatures, writes
from hardener.verify.compare import Regression, attribute, compare, written_dir
from hardener.verify.hints import Fix, apply, fix_for, tmpfs_entry, unhardened
from hardener.verify.seen import Probe, Seen, StackRun

MIB = 1 << 20


def up(service: str = "app", **kw) -> Seen:
    kw.setdefault("status", "running")
    return Seen(service, service, **kw)


def run(label: str, *seen: Seen, probes: list[Probe] | None = None) -> StackRun:
    return StackRun(label, "p", list(seen), host_probes=probes or [])


# --- signatures ----------------------------------------------------------------------------


@pytest.mark.parametrize("line, name, control", [
    ("mkdir: can't create directory '/var/lib/x': Read-only file system", "erofs", "read_only"),
    ("open /data/x: EROFS", "erofs", "read_only"),
    ("20-envsubst-on-templates.sh: ERROR: /etc/app/templates exists, but /etc/app/conf.d is not writable", "not_writable", "read_only"),
    ("sh: can't create /data/appendonly.aof: Permission denied", "eacces", "user"),
    ('FATAL:  data directory "/var/lib/db/data" has wrong ownership', "ownership", "user"),
    ("listen tcp :80: bind: permission denied", "bind", "capabilities"),
    ("nginx: [emerg] bind() to 0.0.0.0:80 failed (13: Permission denied)", "bind", "capabilities"),
    ("chown: /var/lib/x: Operation not permitted", "eperm", "capabilities"),
    ("su: must be suid to work properly", "nnp", "no_new_privileges"),
    ("sh: can't fork: Resource temporarily unavailable", "fork", "resources"),
    ("bash: fork: retry: Resource temporarily unavailable", "fork", "resources"),
    ("Initial heap -Xmx512m (536870912 bytes) exceeds the container memory limit (268435456 bytes)", "memory", "resources"),
    ("malloc: Cannot allocate memory", "memory", "resources"),
    ("java.lang.OutOfMemoryError: Java heap space", "memory", "resources"),
])
def test_signature_of_a_line(line: str, name: str, control: str) -> None:
    sig = signatures.match(line)
    assert sig is not None and (sig.name, sig.control) == (name, control)


@pytest.mark.parametrize("line", [
    "database system is ready to accept connections", "GET / 200", "permissions fine", "",
    # the program says it noticed and carries on (nginx's entrypoint under a read-only root)
    "10-listen-on-ipv6-by-default.sh: info: can not modify /etc/nginx/conf.d/default.conf (read-only file system?)",
    'level=info msg="cache dir not writable, caching off"',
])
def test_no_signature(line: str) -> None:
    assert signatures.match(line) is None


def test_normalise_ignores_time_and_numbers() -> None:
    a = "2024-05-01T10:00:01.123Z worker 4711: Permission denied on port 8080"
    b = "2024-06-02T11:22:33.999Z worker 13: permission denied on port 9090"
    assert signatures.normalise(a) == signatures.normalise(b)


@pytest.mark.parametrize("line, path", [
    ("mkdir: can't create directory '/home/app/.cache': Read-only file system", "/home/app/.cache"),
    ("touch: /etc/app/conf.d/.writable: Read-only file system", "/etc/app/conf.d"),
    ("ERROR: /etc/app/templates exists, but /etc/app/conf.d is not writable", "/etc/app/conf.d"),
    ("can't create /var/cache/uploader/x.txt: Permission denied", "/var/cache/uploader"),
])
def test_written_dir(line: str, path: str) -> None:
    assert written_dir(line) == path


def test_caps_for_a_program_with_file_capabilities_and_by_operation() -> None:
    line = "zoo-serve: line 2: /opt/webd/httpd: Operation not permitted"
    assert signatures.caps_for(line, {"/opt/webd/httpd": ("NET_BIND_SERVICE",)}) == ("NET_BIND_SERVICE",)
    assert signatures.caps_for("chown: /data: Operation not permitted") == ("CHOWN",)
    assert signatures.caps_for("gosu: setgroups: Operation not permitted") == ("SETUID", "SETGID")
    assert signatures.caps_for("something: Operation not permitted") == ()


# --- attribution: which control, by where the write went -----------------------------------


def test_attribution_by_mount_and_user() -> None:
    line = "can't create /data/x: Permission denied"
    on_volume = up(user="1000:1000", mounts={"/data": "volume"}, read_only=True)
    assert attribute(line, on_volume)[0] == "user"
    as_root = up(user="", read_only=False)
    assert attribute(line, as_root)[0] == "capabilities"  # root without DAC_OVERRIDE
    not_writable = "ERROR: /etc/app/conf.d is not writable"
    assert attribute(not_writable, up(user="", read_only=True))[0] == "read_only"
    assert attribute(not_writable, up(user="1000", read_only=True, mounts={"/etc/app/conf.d": "tmpfs"}))[0] == "user"


# --- compare -------------------------------------------------------------------------------


def test_identical_runs_have_no_regression() -> None:
    a = up(ports={"80/tcp": True}, listening=(80,), logs=["ready"], memory=10 * MIB, memory_limit=256 * MIB)
    assert compare(run("original", a), run("hardened", a)) == []


def test_a_container_that_died_names_the_line_and_the_control() -> None:
    base = up(logs=["ready"])
    line = "mkdir: can't create directory '/var/lib/x': Read-only file system"
    hard = up(status="exited", exit_code=1, logs=[line], read_only=True)
    found = compare(run("original", base), run("hardened", hard))
    assert [(r.kind, r.control, r.signature, r.path) for r in found] == [("state", "read_only", "erofs", "/var/lib/x")]
    assert "exited (1), the original was running" in found[0].evidence and line in found[0].evidence


def test_a_line_the_original_printed_too_is_no_regression() -> None:
    line = "warning: /etc/x: Permission denied"
    base = up(logs=["2024-01-01T00:00:00Z " + line])
    hard = up(logs=["2024-02-02T01:01:01Z " + line])
    assert compare(run("original", base), run("hardened", hard)) == []


def test_a_running_container_with_a_new_signature_line() -> None:
    line = "20-envsubst-on-templates.sh: ERROR: /etc/app/templates exists, but /etc/app/conf.d is not writable"
    found = compare(run("original", up()), run("hardened", up(logs=[line], read_only=True)))
    assert [(r.kind, r.control, r.path) for r in found] == [("log", "read_only", "/etc/app/conf.d")]


def test_oom_health_ports_listen_limits_and_probes() -> None:
    base = up(ports={"80/tcp": True}, listening=(80, 9000), health="healthy", memory=30 * MIB, pids=3,
              probes=[Probe("app", "check", 0)])
    hard = up(ports={"80/tcp": False}, listening=(9000,), health="unhealthy", oom=True, memory=250 * MIB,
              memory_limit=256 * MIB, pids=99, pids_limit=100, probes=[Probe("app", "check", 1, "no")])
    found = {r.kind: r for r in compare(run("original", base), run("hardened", hard))}
    assert set(found) == {"oom", "health", "port", "listen", "memory", "pids", "probe"}
    assert found["oom"].control == found["memory"].control == found["pids"].control == "resources"
    assert "80/tcp" in found["port"].evidence and "TCP 80" in found["listen"].evidence
    assert "exited 1" in found["probe"].evidence


def test_missing_container_and_host_probe() -> None:
    found = compare(run("original", up("a"), up("b"), probes=[Probe("host", "curl x", 0)]),
                    run("hardened", up("a"), probes=[Probe("host", "curl x", 7, "refused")]))
    assert {(r.service, r.kind) for r in found} == {("b", "missing"), ("host", "probe")}


def test_a_probe_failing_on_the_original_too_still_fails() -> None:
    found = compare(run("original", up(probes=[Probe("app", "c", 1)])), run("hardened", up(probes=[Probe("app", "c", 1)])))
    assert len(found) == 1 and "fails on the original too" in found[0].evidence


def test_a_completed_one_shot_is_up() -> None:
    done = up(status="exited", exit_code=0, completed=True)
    assert compare(run("original", done), run("hardened", done)) == []
    failed = up(status="exited", exit_code=2)
    assert compare(run("original", done), run("hardened", failed))[0].kind == "state"


# --- fixes ---------------------------------------------------------------------------------


def _r(line: str, seen: Seen, kind: str = "log") -> Regression:
    control, sig, path = attribute(line, seen)
    return Regression(seen.label, "fresh start", kind, line, control, sig, line, path)


def test_fix_for_each_signature() -> None:
    ro = up(user="10001:10001", read_only=True)
    fix = fix_for(_r("mkdir: can't create directory '/home/app/.cache': Read-only file system", ro), ro, up())
    assert (fix.key, fix.value) == ("tmpfs", "/home/app/.cache:size=64m,uid=10001,gid=10001,mode=0755,noexec,nosuid,nodev")
    assert fix.x_harden() == 'x-harden: {tmpfs: ["/home/app/.cache:size=64m,uid=10001,gid=10001,mode=0755,noexec,nosuid,nodev"]}'
    system = fix_for(_r("touch: /etc/passwd: Read-only file system", ro), ro, up())
    assert (system.key, system.value) == ("skip", "read_only")
    # busybox `mkdir -p /var/lib/x` names /var; the original's run shows what it created there
    made = up(diff=[("C", "/var"), ("A", "/var/lib"), ("A", "/var/lib/x"), ("A", "/var/lib/x/started")])
    fix = fix_for(_r("mkdir: can't create directory '/var/': Read-only file system", ro), ro, made)
    assert (fix.key, fix.value.split(":")[0]) == ("tmpfs", "/var/lib/x")
    held = up(user="", read_only=True, listings={"/etc/app": ["default.conf"]})
    fix = fix_for(_r("ERROR: /etc/app is not writable", held), held, up())
    assert (fix.key, fix.value) == ("skip", "read_only") and "default.conf" in fix.why
    vol = up(user="1000:1000", mounts={"/data": "volume"})
    base = up(procs=[("999", "1000", "kv-server"), ("999", "1000", "nc")])
    fix = fix_for(_r("sh: can't create /data/appendonly.aof: Permission denied", vol), vol, base)
    assert (fix.control, fix.key, fix.value) == ("user", "user", "999:1000")
    cap = up(user="101:101")
    fix = fix_for(_r("/opt/webd/httpd: Operation not permitted", cap), cap, up(), None, {"/opt/webd/httpd": ("NET_BIND_SERVICE",)})
    assert (fix.key, fix.value) == ("cap_add", ("NET_BIND_SERVICE",))
    jvm = up(memory_limit=256 * MIB)
    line = "Initial heap -Xmx512m (536870912 bytes) exceeds the container memory limit (268435456 bytes)"
    fix = fix_for(_r(line, jvm), jvm, up(), {"environment": {"JAVA_OPTS": "-Xmx512m"}})
    assert (fix.key, fix.value) == ("memory", "768m")  # the declared heap x1.5, above 2 x 256m
    fork = up(pids_limit=3)
    assert fix_for(_r("sh: can't fork: Resource temporarily unavailable", fork), fork, up()).value == 64
    assert fix_for(Regression("app", "fresh start", "state", "exited (1)"), up(), up()) is None


def test_apply_fixes_and_unharden() -> None:
    text = ("services:\n  app:\n    image: x\n    user: '1000:1000'\n    read_only: true\n    tmpfs: [/tmp]\n"
            "    cap_drop: [ALL]\n    security_opt: [no-new-privileges:true, label:disable]\n"
            "    deploy: {resources: {limits: {memory: 256M, pids: 50}}}\n")
    fixed = yaml.safe_load(apply(text, [
        Fix("app", "read_only", "tmpfs", tmpfs_entry("/cache", "1000:1000"), "w"),
        Fix("app", "capabilities", "cap_add", ("CHOWN",), "c"),
        Fix("app", "resources", "memory", "512m", "m"),
        Fix("app", "resources", "pids", 200, "p"),
    ]))["services"]["app"]
    assert fixed["tmpfs"] == ["/tmp", "/cache:size=64m,uid=1000,gid=1000,mode=0755,noexec,nosuid,nodev"]
    assert fixed["cap_add"] == ["CHOWN"] and fixed["deploy"]["resources"]["limits"] == {"memory": "512M", "pids": 200}
    plain = yaml.safe_load(unhardened(text))["services"]["app"]
    assert plain == {"image": "x", "tmpfs": ["/tmp"], "security_opt": ["label:disable"], "deploy": {"resources": {}}}


# --- what a run teaches tune ---------------------------------------------------------------


DIFF = [("C", "/home"), ("C", "/home/app"), ("A", "/home/app/.cache"), ("A", "/home/app/.cache/app"),
        ("A", "/home/app/.cache/app/index.cache"), ("C", "/srv"), ("C", "/srv/uploader"), ("A", "/srv/uploader/uploads.log"),
        ("C", "/var"), ("C", "/var/cache"), ("C", "/var/cache/uploader"), ("A", "/var/cache/uploader/r.txt"),
        ("A", "/var/lib/db"), ("A", "/var/lib/db/data")]


def test_places_a_run_wrote() -> None:
    found = writes.places(DIFF, {"/var/lib/db/data": "volume"})
    assert found.written == {"/home/app/.cache": ["/home/app/.cache/app/index.cache"],
                             "/srv/uploader": ["/srv/uploader/uploads.log"],
                             "/var/cache/uploader": ["/var/cache/uploader/r.txt"]}
    decision = writes.decide(found, {"/srv/uploader": ["www", "uploads.log"], "/var/cache/uploader": ["r.txt"],
                                     "/home/app/.cache": ["app"]}, DIFF)
    assert decision.tmpfs == ["/home/app/.cache", "/var/cache/uploader"]
    assert list(decision.data) == ["/srv/uploader"] and "mount a volume at /srv/uploader" in decision.data["/srv/uploader"]


def test_many_directories_created_side_by_side_make_their_parent_the_place() -> None:
    diff = [("C", "/var"), ("A", "/var/app")] + [x for n in "abcd" for x in (("A", f"/var/app/{n}"), ("A", f"/var/app/{n}/f"))]
    assert list(writes.places(diff, {}).written) == ["/var/app"]


def test_learn_user_tmpfs_limits_and_data_paths() -> None:
    seen = up("uploader", diff=DIFF, mounts={"/var/lib/db/data": "volume"}, memory=20 * MIB, pids=3,
              procs=[("999", "999", "db"), ("999", "999", "db")],
              listings={"/srv/uploader": ["www", "uploads.log"], "/var/cache/uploader": ["r.txt"], "/home/app/.cache": []})
    got = learn.learn(run("original", seen))["uploader"]
    assert got.user == "999:999" and got.tmpfs == ("/home/app/.cache", "/var/cache/uploader")
    assert got.memory == "128m" and got.pids == 16 and "read_only" in got.doubts
    assert learn.learn(run("original", up(procs=[("0", "0", "init"), ("1000", "1000", "app")])))["app"].user is None


def test_tuning_escalates_a_fix_that_did_not_help() -> None:
    tuning = Tuning({"app": Observed()})
    hard = up(user="1000:1000", mounts={"/data": "volume"})
    base = up(procs=[("999", "999", "db")])
    line = "can't create /data/x: Permission denied"
    r = _r(line, hard)
    runs = [run("hardened", hard)]
    model = {"services": {"app": {}}}
    assert tuning.adjust([r], runs, run("original", base), model, {}, {"app": {"user"}})
    assert tuning.observed(["app"])["app"].user == "999:999"
    assert tuning.adjust([r], runs, run("original", base), model, {}, {"app": {"user"}})  # same again: dropped
    assert "user" in tuning.observed(["app"])["app"].skip
    assert not tuning.adjust([r], runs, run("original", base), model, {}, {"app": {"user"}})  # nothing left to try


def test_tuning_bisects_a_regression_no_line_explains() -> None:
    tuning = Tuning({"app": Observed()})
    r = Regression("app", "fresh start", "state", "exited (1)")
    args = ([run("hardened", up())], run("original", up()), {"services": {"app": {}}}, {}, {"app": {"read_only", "user"}})
    assert tuning.adjust([r], *args) and set(tuning.observed(["app"])["app"].skip) == {"read_only"}
    assert tuning.adjust([r], *args) and set(tuning.observed(["app"])["app"].skip) == {"user"}  # read_only restored
    assert not tuning.adjust([r], *args)


# --- the observed layer in planning --------------------------------------------------------


def test_observed_facts_become_evidence_and_verified_values_are_not_reviewed() -> None:
    text = "services:\n  app:\n    image: zoo/example:1\n"
    profile = load_profile()
    review = replace(profile, data={**profile.data, "unverified": "review"})
    plain = harden_text(text, review)
    assert {s.control for s in plain.skips} >= {"user", "read_only", "capabilities", "resources"}
    seen = Observed(tmpfs=("/var/cache/app",), tmpfs_fact="docker diff: writes /var/cache/app/x",
                    memory="512m", memory_fact="peak memory 100 MiB (docker stats) x4",
                    verified={"user": "ran hardened", "capabilities": "ran hardened", "resources": "ran hardened"})
    result = harden_text(text, review, project=Project(observed={"app": seen}))
    assert result.status is Status.CHANGED
    evidence = {(c.control, c.path): c.evidence for c in result.changes}
    assert evidence[("read_only", ("tmpfs",))] == "observed:docker diff: writes /var/cache/app/x"
    assert evidence[("resources", ("mem_limit",))] == "observed:peak memory 100 MiB (docker stats) x4"
    assert evidence[("user", ("user",))] == "observed:ran hardened"
    assert "/var/cache/app:size=64m,uid=1000,gid=1000,mode=1777,noexec,nosuid,nodev" in result.text
    assert not [s for s in result.skips if s.control != "no_new_privileges"]


def test_observed_skip_and_user_yield_to_stronger_layers() -> None:
    text = "services:\n  app:\n    image: zoo/example:1\n    x-harden: {user: '2000:2000'}\n"
    seen = Observed(user="999:999", skip={"read_only": "it writes /srv/x next to the image's files"})
    result = harden_text(text, load_profile(), project=Project(observed={"app": seen}))
    assert 'user: "2000:2000"' in result.text and "read_only" not in result.text
    assert any(s.control == "read_only" and "(observed)" in s.reason for s in result.skips)


def test_a_doubt_from_the_original_run_yields_to_the_knowledge_base() -> None:
    doubt = Observed(doubts={"read_only": "it writes /etc/nginx/conf.d/default.conf next to the image's files"})
    known = harden_text("services:\n  web:\n    image: nginx:1.27\n", load_profile(), project=Project(observed={"web": doubt}))
    assert "read_only: true" in known.text  # the knowledge entry for nginx vouches for read_only
    plain = harden_text("services:\n  web:\n    image: zoo/example:1\n", load_profile(), project=Project(observed={"web": doubt}))
    assert "read_only" not in plain.text and any(s.control == "read_only" and "conf.d" in s.reason for s in plain.skips)
    # a tmpfs the same run learned does not vouch for read_only against the doubt
    both = replace(doubt, tmpfs=("/var/cache/app",))
    plain = harden_text("services:\n  web:\n    image: zoo/example:1\n", load_profile(), project=Project(observed={"web": both}))
    assert "read_only" not in plain.text
