#!/usr/bin/env bash
# The cold start of `wgtrain bench train`: when a fresh process with empty caches (Mesa's shader
# cache and wgtrain's kernel cache) finishes its first training step, and its peak RSS.
# Alternates, round by round: this tree's build, the same build with WGTRAIN_SERIAL_COMPILE=1
# (no compile-ahead helper), and OLD (another build's wgtrain binary, optional). Prints every
# run, then the medians.
#
# Usage: tools/cold_start.sh [OLD_BINARY] [ROUNDS] [BATCH]     (defaults: none, 5, 64)
# Run it on a quiet machine; lavapipe's timings collapse when anything else runs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
new=$root/target/release/wgtrain
old=${1:-}
rounds=${2:-5}
batch=${3:-64}
[ -x "$new" ] || { echo "build first: cargo build --release" >&2; exit 1; }
[ -z "$old" ] || [ -x "$old" ] || { echo "$old: not an executable" >&2; exit 1; }
unset MESA_SHADER_CACHE_DIR WGTRAIN_CACHE_DIR MESA_SHADER_CACHE_DISABLE WGTRAIN_SERIAL_COMPILE
export RUST_LOG=warn XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/xdg-cold-start}
mkdir -p -m 700 "$XDG_RUNTIME_DIR"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
builds="new serial"
[ -n "$old" ] && builds="$builds old"
for r in $(seq 1 "$rounds"); do
  for b in $builds; do
    rm -rf "$work/cache" && mkdir "$work/cache"
    bin=$new; serial=0
    [ "$b" = old ] && bin=$old
    [ "$b" = serial ] && serial=1
    XDG_CACHE_HOME=$work/cache WGTRAIN_SERIAL_COMPILE=$serial /usr/bin/time -f "%M" -o "$work/rss" \
      "$bin" bench train --batch-sizes "$batch" --windows 1 --steps 1 >"$work/out" 2>&1
    # The table row for the batch: "<batch> <first step> s ...".
    first=$(awk -v b="$batch" '$1 == b && $3 == "s" { print $2; exit }' "$work/out")
    rss=$(( $(cat "$work/rss") / 1000 ))
    echo "round $r $b: first step done at $first s, peak RSS $rss MB"
    echo "$b $first $rss" >>"$work/all"
  done
done
echo "medians over $rounds rounds (batch $batch):"
for b in $builds; do
  awk -v b="$b" '$1 == b { print $2 }' "$work/all" | sort -g | awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "  %-7s first step %.2f s", "'"$b"'", m }'
  awk -v b="$b" '$1 == b { print $3 }' "$work/all" | sort -g | awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf ", peak RSS %.0f MB\n", m }'
done
