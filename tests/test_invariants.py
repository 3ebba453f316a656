"""The strict untouched-lines check (`invariants.lost_lines`) is itself tested: it must
report every damage outside the hardening spans, and pass every legitimate output."""

from __future__ import annotations

import pytest

from hardener.core import harden_text
from hardener.model import Status
from hardener.profile import load_profile
from invariants import changeable_lines, lost_lines

BASE = """\
# stack
services:
  web:
    image: myuser/app  # the app
    ports: ["80:80"]
    command: --resources-dir /x
    cap_drop: [NET_RAW]
    environment:
      user: admin
      deploy: later
  # the database
  db:
    image: postgres:16
    volumes:
      - data:/var/lib/postgresql/data
volumes:
  data: {}
"""


def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


# --- damage outside the spans is reported -----------------------------------------------


@pytest.mark.parametrize(
    "old, new, lost",
    [
        ("    image: myuser/app  # the app\n", "", ["    image: myuser/app  # the app\n"]),
        ('    ports: ["80:80"]\n', '    ports: ["80:80", "443:443"]\n', ['    ports: ["80:80"]\n']),
        ("    command: --resources-dir /x\n", "", ["    command: --resources-dir /x\n"]),
        ("    image: postgres:16\n", "    image: postgres:17\n", ["    image: postgres:16\n"]),  # untouched service
        ("      user: admin\n", "      user: root\n", ["      user: admin\n"]),  # `user` under environment
        ("      deploy: later\n", "", ["      deploy: later\n"]),
        ("  data: {}\n", "  data: {driver: local}\n", ["  data: {}\n"]),
        ("# stack\n", "# stack  \n", ["# stack\n"]),  # a trailing blank
    ],
    ids=["image-deleted", "ports-changed", "command-deleted", "untouched-service-changed", "user-under-environment",
         "deploy-under-environment", "top-level-volume", "trailing-blank"],
)
def test_damage_is_reported(old, new, lost):
    assert lost_lines(BASE, edit(BASE, old, new)) == lost


def test_a_comment_line_moved_is_reported():
    moved = edit(BASE, "  # the database\n  db:\n    image: postgres:16\n", "  db:\n    image: postgres:16\n  # the database\n")
    assert lost_lines(BASE, moved) != []


def test_two_lines_swapped_are_reported():
    swapped = edit(BASE, '    ports: ["80:80"]\n    command: --resources-dir /x\n', '    command: --resources-dir /x\n    ports: ["80:80"]\n')
    assert lost_lines(BASE, swapped) != []


def test_a_duplicated_line_counts_once():
    """A line the output still holds, but only once where the original had it twice."""
    text = "services:\n  a:\n    image: x\n    # note\n  b:\n    image: x\n    # note\n"
    assert lost_lines(text, text.replace("  b:\n    image: x\n", "  b:\n")) == ["    image: x\n"]


def test_line_endings_are_part_of_the_line():
    crlf = BASE.replace("\n", "\r\n")
    assert lost_lines(crlf, crlf) == []
    assert lost_lines(crlf, crlf.replace("  db:\r\n", "  db:\n")) == ["  db:\r\n"]
    mixed = "services:\r\n  a:\n    image: x\r\n"
    assert lost_lines(mixed, mixed.replace("  a:\n", "  a:\r\n")) == ["  a:\n"]
    lone_cr = "services:\n  a:\n    image: x\r    # note\n"
    assert lost_lines(lone_cr, lone_cr.replace("x\r", "x\n")) == ["    image: x\r"]


def test_inherited_keys_give_no_span():
    """A hardening key in an `x-` anchor, or reached through `<<:`, is the anchor's: its
    lines are not the service's to change."""
    text = "x-common: &common\n  cap_drop: [NET_RAW]\n  user: app\nservices:\n  a:\n    <<: *common\n    image: x\n"
    assert changeable_lines(text) == set()
    assert lost_lines(text, edit(text, "  cap_drop: [NET_RAW]\n", "  cap_drop: [NET_RAW, ALL]\n")) == ["  cap_drop: [NET_RAW]\n"]
    assert lost_lines(text, edit(text, "    <<: *common\n", "")) == ["    <<: *common\n"]


def test_a_service_that_is_an_alias_gives_no_span_of_its_own():
    text = "services:\n  a: &a\n    image: x\n    user: app\n  b: *a\n"
    assert changeable_lines(text) == {3}  # a's user line only


def test_an_original_that_does_not_parse_keeps_every_line():
    text = "services:\n  a:\n    image: [x\n    cap_drop: [NET_RAW]\n"
    assert changeable_lines(text) == set()
    assert lost_lines(text, edit(text, "    cap_drop: [NET_RAW]\n", "    cap_drop: [NET_RAW, ALL]\n")) == ["    cap_drop: [NET_RAW]\n"]


def test_spans_end_where_the_value_ends():
    text = (
        "services:\n"              # 0
        "  a:\n"                   # 1
        "    image: x\n"           # 2
        "    cap_drop:\n"          # 3
        "      - NET_RAW  # why\n"  # 4
        "      # - SYS_ADMIN\n"    # 5  a comment after the last item: not in the span
        "    security_opt: [\n"    # 6
        "      label:disable\n"    # 7
        "    ]\n"                  # 8
        "    user:\n"              # 9  empty value: the key line only
        "    deploy:\n"            # 10
        "      replicas: 2\n"      # 11
        "      labels: |\n"        # 12
        "        x\n"              # 13
        "\n"                       # 14 blank line after a block scalar: not in the span
        "    # about ports\n"      # 15
        "    ports: []\n"          # 16
        "  b: {image: x,\n"        # 17 a flow service: all its lines
        "      restart: always}\n"  # 18
        "---\n"                    # 19
        "services:\n"              # 20
        "  c:\n"                   # 21
        "    tmpfs: /run\n"        # 22 a second document
    )
    assert sorted(changeable_lines(text)) == [3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 17, 18, 22]


# --- legitimate outputs pass ------------------------------------------------------------


def test_a_flow_list_extended_passes():
    out = edit(BASE, "    cap_drop: [NET_RAW]\n", "    cap_drop: [NET_RAW, ALL]\n")
    assert lost_lines(BASE, out) == []


def test_a_flow_service_extended_passes():
    text = "services:\n  web: {image: x, restart: always}  # pinned\n  db:\n    image: y\n"
    out = edit(text, "{image: x, restart: always}", '{image: x, restart: always, user: "1000:1000", read_only: true}')
    assert lost_lines(text, out) == []


def test_new_keys_inserted_pass():
    out = edit(BASE, "  # the database\n", '    user: "1000:1000"\n    read_only: true\n\n  # the database\n')
    out = edit(out, "      - data:/var/lib/postgresql/data\n", "      - data:/var/lib/postgresql/data\n    mem_limit: 256m\n")
    assert lost_lines(BASE, out) == []


def test_a_string_tmpfs_turned_into_a_list_passes():
    text = "services:\n  a:\n    image: x\n    tmpfs: /run  # c\n    ports: []\n"
    out = edit(text, "    tmpfs: /run  # c\n", "    tmpfs:\n      - /run  # c\n      - /tmp:size=64m\n")
    assert lost_lines(text, out) == []


def test_a_missing_final_newline_passes():
    text = "services:\n  a:\n    image: x"
    assert lost_lines(text, text + "\n    read_only: true") == []
    cr = "services:\r  a:\r    image: x"
    assert lost_lines(cr, cr + "\r    read_only: true") == []


@pytest.mark.parametrize("text", [
    BASE,
    BASE.replace("\n", "\r\n"),
    "\ufeff---\nservices:\n  a: {image: x}\n---\nservices:\n  b:\n    image: y\n    cap_drop:\n      - NET_RAW\n",
    "x-c: &c\n  restart: always\nservices:\n  a:\n    <<: *c\n    image: x\n    security_opt: [label:disable]  # keep\n",
    "services:\n  job:\n    image: busybox\n    command: |\n      run\n    # note\n  next:\n    image: x",
])
def test_real_outputs_pass(text):
    result = harden_text(text, load_profile("baseline"))
    assert result.status is Status.CHANGED, result.message
    assert lost_lines(text, result.text) == []
