#!/usr/bin/env bash
# Builds and runs one fuzz target for a bounded time, installing cargo-fuzz
# into a project-local root (fuzz/.tools) the first time.
#
#   fuzz/run.sh TARGET [SECONDS] [extra libFuzzer flags...]
#   fuzz/run.sh --list          # the targets
#   fuzz/run.sh --build         # build all targets, run none
#   fuzz/run.sh --repro TARGET FILE   # run one input (a crasher) alone
#
# Environment: FUZZ_SANITIZER (default `address`; `none` builds faster and
# runs faster but finds only panics, not memory errors).
#
# Only a stable toolchain is available here; cargo-fuzz wants nightly for its
# sanitizer and coverage flags, so RUSTC_BOOTSTRAP=1 lets stable accept them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

CARGO_FUZZ_VERSION=0.13.2
tools="$here/.tools"
cargo_fuzz="$tools/bin/cargo-fuzz"
if [[ ! -x "$cargo_fuzz" ]] || ! "$cargo_fuzz" --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    echo "installing cargo-fuzz $CARGO_FUZZ_VERSION into $tools" >&2
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" --root "$tools"
fi
export PATH="$tools/bin:$PATH"
export RUSTC_BOOTSTRAP=1

sanitizer="${FUZZ_SANITIZER:-address}"

case "${1:-}" in
    "" | -h | --help)
        sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
    --list)
        cargo fuzz list
        exit 0
        ;;
    --build)
        cargo fuzz build --release --sanitizer "$sanitizer"
        exit 0
        ;;
    --repro)
        exec cargo fuzz run --release --sanitizer "$sanitizer" "$2" "$3" -- \
            -rss_limit_mb=2048 -malloc_limit_mb=1024
        ;;
esac

target="$1"
seconds="${2:-60}"
shift $(( $# >= 2 ? 2 : 1 ))

# One process, one job (libFuzzer's default; -jobs would fork workers that log
# to files). Seeds live in corpus/TARGET (committed, small); what the fuzzer finds goes
# into work/TARGET (ignored), so the committed seeds stay as they are.
mkdir -p "work/$target" "artifacts/$target"
exec cargo fuzz run --release --sanitizer "$sanitizer" "$target" \
    "work/$target" "corpus/$target" -- \
    -max_total_time="$seconds" \
    -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -timeout=10 \
    -print_final_stats=1 \
    "$@"
