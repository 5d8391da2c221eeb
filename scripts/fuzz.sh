#!/usr/bin/env bash
# Fuzzes every parser of network input Parloir owns (fuzz/, docs/fuzzing.md)
# with cargo fuzz (libFuzzer) on the stable toolchain: no sanitizer, so no
# nightly; Rust's own checks (bounds, and with --debug-assertions overflow
# and debug assertions) find the bugs. Installs cargo-fuzz where it is missing.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   (default: 600 s, every target)
#
# Each target starts from fuzz/seeds/TARGET (config also from config/, the
# example files) and keeps what it learns in
# fuzz/corpus/TARGET. A crash stops the run: its input is in
# fuzz/artifacts/TARGET/; copy it into fuzz/regressions/TARGET/ and
# `cargo test` replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-600}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(messages datagrams offer tcp_frames rtp tokens headers config sessions)

command -v c++ >/dev/null 2>&1 || {
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get install -y -qq --no-install-recommends g++ >/dev/null
}
cargo fuzz --version >/dev/null 2>&1 || cargo install --locked cargo-fuzz

cd fuzz
bin="target/$(rustc -vV | sed -n 's/^host: //p')/release"
echo "== cargo fuzz build"
cargo fuzz build --sanitizer none -O --debug-assertions
[ -x "$bin/${targets[0]}" ]
summary=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== $t: ${seconds} s"
  log="artifacts/$t/last-run.log"
  # -rss_limit_mb: one input must not take more than a browser tab would.
  # The binaries of the one build above: sources edited meanwhile do not
  # change what this run fuzzes.
  # The configuration target starts from the example files themselves.
  seeds=("seeds/$t")
  [ "$t" = config ] && seeds+=(../config)
  if ! "$bin/$t" "corpus/$t" "${seeds[@]}" \
      -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 \
      -artifact_prefix="artifacts/$t/" \
      -print_final_stats=1 -close_fd_mask=1 >"$log" 2>&1; then
    tail -40 "$log"
    echo "FUZZ CRASH in $t: input in fuzz/artifacts/$t/" >&2
    exit 1
  fi
  runs=$(grep -a -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  cov=$(grep -a -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
  corpus=$(find "corpus/$t" -type f | wc -l)
  line="$t: ${seconds} s, ${runs:-?} inputs, $((${runs:-0} / seconds)) per second, coverage ${cov:-?} edges, corpus ${corpus}, no crash"
  echo "$line"
  summary+=("$line")
done
echo "== summary"
printf '%s\n' "${summary[@]}"
