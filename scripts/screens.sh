#!/usr/bin/env bash
# Screenshots of every screen of the web client, in English and in French,
# on a phone (390×844) and on a laptop (1280×800), into docs/screens/
# (PNG files and a README.md listing them). Builds the release binary;
# tests/screens.rs starts Parloir and a headless Chromium with a fake
# camera (scripts/test.sh installs Chromium where it is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

out=docs/screens
mkdir -p "$out"
rm -f "$out"/*.png
echo "== cargo build --release"
cargo build --release
echo "== screenshots"
PARLOIR_SCREENS_DIR="$PWD/$out" \
  cargo test --release --test screens -- --ignored --nocapture --test-threads=1

screens=(home invalid-link prejoin call-alone call-2 call-chat call-people password lobby call-knock ended call-3 full busy call-interrupted left)
declare -A title=(
  [home]="Home"
  [invalid-link]="Home, after an invalid room link"
  [prejoin]="Pre-join (camera preview, name, devices)"
  [call-alone]="Alone in a call: the link to invite others"
  [call-2]="Call of two"
  [call-chat]="Call of two, chat open"
  [call-people]="Call of two, participant list, a hand raised, the moderator's door"
  [password]="A locked room asks for its password"
  [lobby]="Waiting in the lobby to be let in"
  [call-knock]="The moderator sees who knocks: let in or refuse"
  [ended]="Not let in by the moderator"
  [call-3]="Call of three"
  [full]="The room is full: waiting for a place"
  [call-interrupted]="Call interrupted (server gone)"
  [busy]="A new call sent to partner services (redirect on)"
  [left]="After leaving"
)
{
  echo "# Screens of the web client"
  echo
  echo "Made by \`scripts/screens.sh\` (which runs \`cargo test --release --test screens -- --ignored\`)"
  echo "on $(date -u +%Y-%m-%d), from commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- client src || echo ' with local changes'):"
  echo "headless Chromium with its fake camera (a moving test pattern) and fake microphone."
  echo "Browser language English (\`en\`) or French (\`fr\`); phone: 390×844 CSS pixels, mobile emulation,"
  echo "device pixel ratio 1; laptop: 1280×800."
  echo
  echo "| Screen | en phone | en laptop | fr phone | fr laptop |"
  echo "|---|---|---|---|---|"
  for s in "${screens[@]}"; do
    row="| ${title[$s]} |"
    for l in en fr; do
      for z in phone laptop; do
        f="$l-$z-$s.png"
        if [ -f "$out/$f" ]; then
          w=120; [ "$z" = laptop ] && w=240
          row+=" [<img src=\"$f\" width=\"$w\" alt=\"${title[$s]}, $l, $z\">]($f) |"
        else
          row+=" (missing) |"
        fi
      done
    done
    echo "$row"
  done
} >"$out/README.md"
echo "== $(ls "$out"/*.png | wc -l) screenshots, $(du -ch "$out"/*.png | tail -1 | cut -f1) in $out"
