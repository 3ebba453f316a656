"""`harden verify`'s judgement of what the engine reports, and its diagnosis of a dead
service: pure functions, fed with the shapes `docker inspect`, `/proc/1/status` and
`docker top` give (the engine itself is exercised in tests/e2e)."""

from __future__ import annotations

from hardener.verify.diagnose import diagnose
from hardener.verify.expect import expectations
from hardener.verify.judge import Box, judge, parse_status, parse_top

HARDENED = {
    "image": "example/app:1.0",
    "user": "1000:1000",
    "read_only": True,
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges:true"],
    "mem_limit": "268435456",
    "cpus": 0.5,
    "pids_limit": 100,
}


def box(procs=None, uid="1000", capeff="0000000000000000", readonly=True, status="running") -> Box:
    return Box(
        service="app",
        number=1,
        inspect={
            "Id": "c0ffee",
            "State": {"Status": status, "ExitCode": 0 if status == "running" else 1},
            "HostConfig": {"ReadonlyRootfs": readonly, "CapDrop": ["ALL"], "CapAdd": None, "SecurityOpt": ["no-new-privileges:true"],
                           "Memory": 268435456, "NanoCpus": 500000000, "PidsLimit": 100, "RestartPolicy": {"Name": "no"}},
        },
        status={"Uid": f"{uid}\t{uid}\t{uid}\t{uid}", "Gid": "1000\t1000\t1000\t1000", "CapEff": capeff, "NoNewPrivs": "1"},
        procs=procs,
    )


def test_a_hardened_container_passes_and_shows_its_processes():
    row = judge(box(procs=[("1000", "app"), ("1000", "worker"), ("1000", "worker")]), expectations(HARDENED))
    assert row.failures == []
    assert row.cells["uid"] == "1000:1000" and row.cells["procs"] == "3x1000"


def test_a_process_other_than_pid_1_running_as_root_fails():
    row = judge(box(procs=[("1000", "app"), ("0", "helper")]), expectations(HARDENED))
    assert row.failures == ["app procs: process helper runs as root, the file asks for user 1000:1000"]
    assert row.cells["procs"] == "!1xroot 1x1000"


def test_root_kept_on_purpose_is_shown_not_failed():
    wants = expectations({**HARDENED, "user": None, "cap_add": ["CHOWN", "SETUID", "SETGID"]})
    row = judge(box(procs=[("0", "nginx"), ("101", "nginx"), ("101", "nginx")], uid="0", capeff="00000000000000c1"), wants)
    assert row.failures == []
    assert row.cells["uid"] == "0:1000 (root kept)" and row.cells["procs"] == "1xroot 2x101"


def test_what_the_engine_did_not_apply_is_named():
    row = judge(box(procs=[("1000", "app")], readonly=False, capeff="00000000a80425fb"), expectations(HARDENED))
    assert {f.split(":")[0] for f in row.failures} == {"app read-only", "app CapEff"}


def test_processes_that_cannot_be_listed_do_not_fail():
    row = judge(box(procs=None), expectations(HARDENED))
    assert row.failures == [] and row.cells["procs"] == "n/a"


def test_diagnosis_names_the_fix():
    hints = diagnose(["mkdir: cannot create directory '/var/cache/app': Read-only file system",
                      "chown: changing ownership of '/data': Operation not permitted"], "1000:1000")
    assert hints[0].startswith('"Read-only file system": add a tmpfs (or a volume) for /var/cache')
    assert '"/var/cache:uid=1000,gid=1000"' in hints[0]
    assert "probably CHOWN" in hints[1]


def test_status_and_top_texts_are_parsed():
    status = parse_status("Name:\tnginx\nUid:\t0\t0\t0\t0\nCapEff:\t00000000000000c1\nNoNewPrivs:\t1\n")
    assert status == {"Name": "nginx", "Uid": "0\t0\t0\t0", "CapEff": "00000000000000c1", "NoNewPrivs": "1"}
    assert parse_top("PID    UID   COMMAND\n4242   0     nginx\n4300   101   nginx worker\n") == [("0", "nginx"), ("101", "nginx worker")]
    assert parse_status(None) is None and parse_top(None) is None
