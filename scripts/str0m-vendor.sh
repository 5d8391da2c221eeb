#!/usr/bin/env bash
# Lays str0m VERSION (as published on crates.io) under vendor/str0m and
# applies Parloir's patch series (vendor/str0m/patches/NNNN-*.patch) onto
# it, in order. Run it to move to a newer release: a patch that no longer
# applies stops the script, to be made again on the new release (or
# dropped, once upstream has it). See docs/performance.md.
#
#   scripts/str0m-vendor.sh 0.25.0
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:?usage: $0 VERSION}"
dest=vendor/str0m
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The series is kept aside while the crate is laid anew.
cp -r "$dest/patches" "$work/patches"

# cargo vendor fetches the published crate from the registry.
mkdir -p "$work/get/src"
cat > "$work/get/Cargo.toml" <<TOML
[package]
name = "get-str0m"
version = "0.0.0"
edition = "2021"
[dependencies]
str0m = { version = "=$version", default-features = false }
[workspace]
TOML
touch "$work/get/src/lib.rs"
(cd "$work/get" && cargo vendor --versioned-dirs -q "$work/vendored" >/dev/null)
src="$work/vendored/str0m-$version"
[ -d "$src" ] || { echo "str0m $version was not fetched" >&2; exit 1; }
rm -f "$src/.cargo-checksum.json"
# The library only: its tests (6 MB of captures), examples, documents and
# editor settings are upstream's, not built here.
rm -rf "$src"/{tests,examples,docs,logo,.github,.vscode,.cargo} \
  "$src"/{cert.pem,ssl-gen.sh,ssl-req.conf,.taplo.toml,README.tpl}

rm -rf "$dest"
cp -r "$src" "$dest"
cp -r "$work/patches" "$dest/patches"
for p in "$dest"/patches/[0-9][0-9][0-9][0-9]-*.patch; do
  echo "== $(basename "$p")"
  patch -p1 --no-backup-if-mismatch -d "$dest" < "$p"
done
echo "str0m $version with $(ls "$dest"/patches/*.patch | wc -l) patches in $dest"
