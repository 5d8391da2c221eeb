#!/usr/bin/env bash
# Runs every test of Parloir: formatting, lints, unit tests and the
# end-to-end tests in headless Chromium. Installs what it needs where it is
# missing (Debian packages; run as root or with sudo available).
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/lib/chromium/chromium ] || need_pkgs+=(chromium)
command -v pkg-config >/dev/null 2>&1 || need_pkgs+=(pkg-config)
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
command -v prometheus >/dev/null 2>&1 || need_pkgs+=(prometheus)
# Impaired networks in the end-to-end tests: namespaces (ip), loss (nft), caps (tc).
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
command -v nft >/dev/null 2>&1 || need_pkgs+=(nftables)
command -v turnserver >/dev/null 2>&1 || need_pkgs+=(coturn)
# The benchmark's targets: its start-up of each is tested (loadtest/tests).
command -v janus >/dev/null 2>&1 || need_pkgs+=(janus)
command -v taskset >/dev/null 2>&1 || need_pkgs+=(util-linux)
# The accessibility audit's axe-core comes from the npm registry.
command -v npm >/dev/null 2>&1 || need_pkgs+=(npm)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "== installing: ${need_pkgs[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
if command -v rustup >/dev/null 2>&1; then
  cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
  cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --release --workspace --all-targets -- -D warnings
if command -v docker-compose >/dev/null 2>&1; then
  echo "== docker-compose config"
  PARLOIR_SECRET=ci docker-compose -f docker/compose.yml config >/dev/null
fi
# axe-core for tests/a11y_e2e.rs, outside the client (never served).
if [ ! -f target/axe/node_modules/axe-core/axe.min.js ]; then
  echo "== npm install axe-core"
  npm install --prefix target/axe --no-audit --no-fund axe-core@4 >/dev/null
fi
echo "== cargo test"
# Release build: the end-to-end tests run real calls through the binary.
# One test binary at a time: each starts its own browser and server.
# The workspace includes the load generator's smoke test (not the benchmark).
cargo test --release --workspace -- --test-threads=1
# Every fuzz target for a short while (the 10-minute runs are
# `scripts/fuzz.sh`, docs/fuzzing.md): the targets build, and the corpus
# of seeds and past crashes passes under libFuzzer too.
echo "== fuzz (20 s per target)"
scripts/fuzz.sh 20
