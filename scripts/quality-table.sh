#!/bin/sh
# Measures the quality table of docs/quality.md (what people see and hear
# under each impairment of one participant's link, with real browsers) and
# writes it there. Needs what scripts/test.sh installs, and root (network
# namespaces). About six minutes.
set -eu
cd "$(dirname "$0")/.."
cargo test --release --test quality_table -- --ignored --nocapture
