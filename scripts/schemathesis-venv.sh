#!/usr/bin/env bash
# Makes the Python virtual environment with Schemathesis that the admin API test runs
# (tests/api/admin/schemathesis.rs), once, and prints the path of its `st` command.
#
#   scripts/schemathesis-venv.sh          # prints e.g. /repo/target/schemathesis-venv/bin/st
#
# The environment lives in $CARGO_TARGET_DIR (or target/) as schemathesis-venv, so reruns reuse
# it; it is made again when the pinned version changes or an earlier attempt did not finish.
# `python3 -m venv` needs Debian's python3 and python3-venv, installed with apt-get when missing.
# Progress goes to stderr; exits non-zero when no environment can be made.
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

VERSION=4.32.5
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
VENV="$TARGET/schemathesis-venv"
# Written last: an environment without it is an attempt that did not finish.
DONE="$VENV/.tokengate-schemathesis-$VERSION"

log() { printf 'schemathesis-venv.sh: %s\n' "$*" >&2; }

mkdir -p "$TARGET"
# Two test runs sharing the target directory make it one after the other.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$TARGET/schemathesis-venv.lock"
    flock 9
fi

if [[ -f "$DONE" && -x "$VENV/bin/st" ]]; then
    echo "$VENV/bin/st"
    exit 0
fi

if ! command -v python3 >/dev/null 2>&1; then
    log "python3 not found; installing python3 and python3-venv with apt-get"
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then SUDO=(sudo); fi
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update >&2
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y python3 python3-venv >&2
    command -v python3 >/dev/null 2>&1 || { log "python3 still not found after installing it"; exit 1; }
fi

rm -rf "$VENV"
if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    log "python3 -m venv failed; installing python3-venv with apt-get"
    rm -rf "$VENV"
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then SUDO=(sudo); fi
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update >&2
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv >&2
    python3 -m venv "$VENV" >&2
fi
log "installing schemathesis $VERSION into $VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "schemathesis==$VERSION" >&2
touch "$DONE"
echo "$VENV/bin/st"
