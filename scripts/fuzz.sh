#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets) for SECONDS each (default 60), one after
# the other, on the nightly toolchain:
#
#   scripts/fuzz.sh           # 60 s per target
#   scripts/fuzz.sh 600       # 10 minutes per target
#
# Installs cargo-fuzz when missing. Builds in fuzz/target. Each target starts from its committed
# seed corpus (fuzz/corpus/TARGET, read only) and keeps what it finds in fuzz/target/corpus/
# TARGET; a crash is written to fuzz/artifacts/TARGET and ends the run with a non-zero status.
# Copy a crash input into fuzz/corpus/TARGET once fixed: the normal test suite replays every
# corpus file (tests/api/fuzz_corpus.rs), so it stays fixed.
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../fuzz"

EACH=${1:-60}
[[ "$EACH" =~ ^[1-9][0-9]*$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS]" >&2; exit 2; }

if [[ -d "$HOME/.cargo/bin" ]]; then PATH="$HOME/.cargo/bin:$PATH"; fi
log() { printf 'fuzz.sh: %s\n' "$*" >&2; }

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# The fuzz crate has a target directory of its own: its builds are instrumented.
unset CARGO_TARGET_DIR
TARGET_DIR="$PWD/target"

status=0
for target in $(cargo +nightly fuzz list); do
    work="$TARGET_DIR/corpus/$target"
    mkdir -p "$work"
    log "$target: ${EACH}s"
    started=$(date +%s)
    if cargo +nightly fuzz run --target-dir "$TARGET_DIR" "$target" "$work" "corpus/$target" \
        -- -max_total_time="$EACH" -print_final_stats=1; then
        log "$target: no crash in $(( $(date +%s) - started ))s ($(ls "$work" | wc -l) inputs kept)"
    else
        log "$target: FAILED after $(( $(date +%s) - started ))s; see fuzz/artifacts/$target"
        status=1
    fi
done
exit "$status"
