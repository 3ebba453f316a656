#!/usr/bin/env bash
# Harden every corpus file, each alone, with the default checks, into OUTDIR:
# OUTDIR/files/* are the outputs, OUTDIR/report.json the JSON report.
# Compare two snapshots (before and after a change) with: diff -r A/files B/files
#   usage: bash tests/bench/snapshot.sh OUTDIR [CORPUS]
set -euo pipefail
out=${1:?usage: snapshot.sh OUTDIR [CORPUS]}
corpus=${2:-$(dirname "$0")/../../../shared/corpus}
harden=${HARDEN:-harden}
rm -rf "$out" && mkdir -p "$out/files"
cp "$corpus"/files/* "$out/files/"
"$harden" fix --format json --report "$out/report.json" "$out"/files/* >/dev/null 2>"$out/stderr" || true
tail -n 1 "$out/stderr"
