"""Host probes that exercise a zoo stack the way its job does, for `harden tune --probe`.

`tune` learns where a service writes from what a run of the original does. A service that
writes only when asked (an upload, a row) shows nothing at start: its probe makes each run
do that work, on the original and on every hardened run, and a probe that fails on a
hardened run is a regression. Probes get each published port as HARDEN_PORT_<SERVICE>_<PORT>.
"""

from __future__ import annotations

_UPLOAD = "http://127.0.0.1:$HARDEN_PORT_UPLOADER_8080/cgi-bin"


def _kv_row(variable: str) -> str:
    """Write one row to a line-oriented key/value server; it must answer OK."""
    return (f"bash -c 'exec 3<>/dev/tcp/127.0.0.1/${variable} && echo \"SET probe 1\" >&3 "
            "&& read -r -t 5 answer <&3 && test \"$answer\" = OK'")


PROBES: dict[str, tuple[str, ...]] = {
    "gosu-db": (_kv_row("HARDEN_PORT_DB_5440"),),
    "suexec-kv": (_kv_row("HARDEN_PORT_KV_6390"),),
    "volume-data": (_kv_row("HARDEN_PORT_STORE_7070"),),
    "uploader": (f'curl -fsS -o /dev/null --data-binary probe "{_UPLOAD}/upload?name=probe.txt" && '
                 f'curl -fsS "{_UPLOAD}/download?name=probe.txt" | grep -qx probe',),
}


def probe_args(stack: str) -> list[str]:
    return [arg for probe in PROBES.get(stack, ()) for arg in ("--probe", probe)]
