"""What facts read from an image decide (pure: records in, changes out), and their place in
the order of evidence: x-harden > knowledge > image facts > declared > profile default."""

from __future__ import annotations

from ruamel.yaml import YAML

from hardener.core import harden_text
from hardener.facts import Drop, EntrypointFacts, ImageFacts
from hardener.image_evidence import INIT_CAPS, layer
from hardener.image_lookup import images_in
from hardener.model import Project
from hardener.profile import load_profile

BASELINE = load_profile("baseline")
DIGEST = "sha256:" + "ab" * 32


def facts(**kw) -> ImageFacts:
    base = dict(reference="zoo/x:1", digest=DIGEST, source="engine", files_read=True,
                passwd={"root": (0, 0, "/root")}, groups={"root": 0})
    base.update(kw)
    return ImageFacts(**base)


def harden(text: str, found: ImageFacts, image: str = "zoo/x:1"):
    return harden_text(text, BASELINE, project=Project(images={image: found}))


def service(text: str, name: str = "a") -> dict:
    return YAML(typ="safe").load(text)["services"][name]


PLAIN = "services:\n  a:\n    image: zoo/x:1\n"
GOSU = facts(passwd={"root": (0, 0, "/root"), "db": (999, 999, "/var/lib/db")}, groups={"root": 0, "db": 999},
             volumes=("/var/lib/db/data",), owners={"/var/lib/db/data": (999, 999, 0o700)},
             entrypoint_facts=EntrypointFacts(drops=(Drop("gosu", "db", None, "db", 8),), checks_root=True,
                                              chowns=("/var/lib/db/data",), writes=("/var/run/db",)))


def test_root_then_drop_runs_as_the_uid_it_drops_to():
    result = harden(PLAIN, GOSU)
    out = service(result.text)
    assert out["user"] == "999:999"
    change = next(c for c in result.changes if c.path == ("user",))
    assert change.evidence.startswith("image:sha256:abababababab") and "drops to db via gosu" in change.evidence
    assert any(t.startswith("/var/run/db:") and "uid=999" in t for t in out["tmpfs"])
    assert not any(t.startswith("/var/lib/db/data") for t in out["tmpfs"])  # never a tmpfs over a VOLUME


def test_non_root_user_is_kept_as_numbers_and_its_cache_is_writable():
    found = facts(user="app", passwd={"root": (0, 0, "/root"), "app": (10001, 10001, "/home/app")}, groups={"app": 10001},
                  workdir="/home/app", owners={"/home/app": (10001, 10001, 0o755)})
    out = service(harden(PLAIN, found).text)
    assert out["user"] == "10001:10001"
    assert any(t.startswith("/home/app/.cache:") for t in out["tmpfs"])  # the home is the workdir: only its cache
    assert not any(t.startswith("/home/app:") for t in out["tmpfs"])


def test_s6_and_puid_images_start_as_root_with_their_init_capabilities():
    found = facts(entrypoint=("/init",), s6_installed=True)
    text = "services:\n  a:\n    image: zoo/x:1\n    environment:\n      - PUID=1000\n      - PGID=1000\n"
    result = harden(text, found)
    out = service(result.text)
    assert "user" not in out and "read_only" not in out
    assert out["cap_drop"] == ["ALL"] and set(INIT_CAPS) <= set(out["cap_add"])
    reasons = {s.control: s.reason for s in result.skips}
    assert "s6-overlay" in reasons["user"] and "PUID/PGID" in reasons["read_only"]
    plain_s6 = service(harden(PLAIN, found).text)  # s6 without PUID: read-only, /run executable
    assert plain_s6["read_only"] is True and any(t.startswith("/run:") and ",exec," in t for t in plain_s6["tmpfs"])


def test_root_image_with_a_root_owned_volume_keeps_root_and_the_volume_is_reported():
    found = facts(volumes=("/data",), owners={"/data": (0, 0, 0o755)})
    result = harden(PLAIN, found)
    assert "user" not in service(result.text)
    assert any(s.control == "user" and "VOLUME /data belongs to root" in s.reason for s in result.skips)
    assert [f.kind for f in result.findings] == ["unmounted_volume"]
    mounted = harden("services:\n  a:\n    image: zoo/x:1\n    volumes: [data:/data]\nvolumes:\n  data:\n", found)
    assert not mounted.findings


def test_host_network_below_1024_keeps_net_bind_service_without_no_new_privileges():
    found = facts(user="www", passwd={"www": (101, 101, "/srv")}, groups={"www": 101}, exposed_ports=("80/tcp",))
    result = harden("services:\n  a:\n    image: zoo/x:1\n    network_mode: host\n", found)
    out = service(result.text)
    assert out["cap_add"] == ["NET_BIND_SERVICE"] and "security_opt" not in out
    assert any(s.control == "no_new_privileges" and "file capability" in s.reason for s in result.skips)
    bridged = service(harden(PLAIN, found).text)  # its own network namespace: nothing to keep
    assert "cap_add" not in bridged and bridged["security_opt"] == ["no-new-privileges:true"]


def test_stronger_evidence_wins():
    text = "services:\n  a:\n    image: zoo/x:1\n    x-harden:\n      user: \"2000:2000\"\n"
    assert service(harden(text, GOSU).text)["user"] == "2000:2000"
    pg = service(harden("services:\n  a:\n    image: postgres:16\n", GOSU, image="postgres:16").text)
    assert pg["user"] == "999:999" and any("/run/postgresql" in t for t in pg["tmpfs"])  # the knowledge entry
    assert service(harden_text(PLAIN, BASELINE).text)["user"] == "1000:1000"  # no facts: the profile


def test_layer_is_pure_and_names_its_evidence():
    found = layer(GOSU, {"image": "zoo/x:1"})
    assert found.user == "999:999" and found.evidence == "image:sha256:abababababab"
    assert found.unmounted == ("/var/lib/db/data",)


def test_images_named_in_a_text():
    text = "services:\n  a:\n    image: \"postgres:16\"  # db\n  b:\n    image: ${REG:-ghcr.io}/x/y:${T:-1}\n  c:\n    build: .\n"
    assert images_in(text) == ["postgres:16", "${REG:-ghcr.io}/x/y:${T:-1}"]


def test_a_program_with_file_capabilities_keeps_them_in_the_bounding_set():
    found = facts(user="webd", passwd={"webd": (101, 101, "/srv")}, groups={"webd": 101},
                  file_caps={"/opt/webd/httpd": ("NET_BIND_SERVICE",)})
    result = harden(PLAIN, found)
    out = service(result.text)
    assert out["cap_drop"] == ["ALL"] and out["cap_add"] == ["NET_BIND_SERVICE"]
    assert "file capabilities" in next(c.evidence for c in result.changes if c.path == ("cap_add",))
