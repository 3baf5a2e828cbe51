#!/usr/bin/env bash
# Extra verification for shmkv, beyond `cargo test` and the loom models: a short run of every
# cargo-fuzz target on the nightly toolchain, and the Miri subset of the library's unit tests.
# Installs what it needs (cargo-fuzz, the miri component). Called from .ci/run.
#
#   FUZZ_SECONDS   seconds per fuzz target (default 60)
#
# Fuzzing always builds into fuzz/target (CARGO_TARGET_DIR is ignored for it); Miri uses
# CARGO_TARGET_DIR when set. New inputs a run finds go to a temporary directory, so the
# committed corpora in fuzz/corpus/ are read, never written; a crash is saved under
# fuzz/artifacts/<target>/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

step() { printf '\n== %s (%ss)\n' "$*" "$SECONDS"; }

fuzz_seconds="${FUZZ_SECONDS:-60}"
targets=(attach_header hostile_peer record_decode record_hostile_peer decode_wire)
scratch="$(mktemp -d)"
cleanup() {
  rm -rf "$scratch"
}
trap cleanup EXIT

step "toolchains"
rustup toolchain list
if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
cargo +nightly --version

step "cargo-fuzz"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz
fi
cargo fuzz --version

for t in "${targets[@]}"; do
  step "fuzz $t for ${fuzz_seconds}s: cargo +nightly fuzz run $t"
  mkdir -p "$scratch/$t"
  dirs=("$scratch/$t" "$root/fuzz/corpus/$t")
  if [ -d "$root/fuzz/regressions/$t" ]; then
    dirs+=("$root/fuzz/regressions/$t")
  fi
  if [ "$t" = decode_wire ]; then
    # The form typed from fuzz/ (its rust-toolchain.toml selects nightly).
    (cd fuzz && env -u CARGO_TARGET_DIR cargo fuzz run "$t" "${dirs[@]}" -- \
      -max_total_time="$fuzz_seconds" -timeout=10 -print_final_stats=1)
  else
    # The form typed from the crate root.
    env -u CARGO_TARGET_DIR cargo +nightly fuzz run "$t" "${dirs[@]}" -- \
      -max_total_time="$fuzz_seconds" -timeout=10 -print_final_stats=1
  fi
done

step "miri component"
if ! rustup +nightly component list --installed 2>/dev/null | grep -q '^miri'; then
  rustup +nightly component add miri rust-src
fi

# The command-line text layer (cli::) and the linearizability checker (lincheck::) are safe
# code with long randomized tests (12 minutes under Miri for cli:: alone); they run natively in
# `cargo test`. Miri interprets the rest: the record ring over heap memory, the lane, the store,
# the table, the codec, the waits.
step "Miri: cargo +nightly miri test -p shmkv --lib"
cargo +nightly miri test -p shmkv --lib

step "done"
