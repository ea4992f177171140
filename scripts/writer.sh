#!/usr/bin/env bash
# The origin's robustness test: appends numbered lines to a file and rotates it as it goes.
#   scripts/writer.sh FILE [LINES] [ROTATE_EVERY] [MODE] [DELAY]
#     MODE: rename (mv FILE FILE.N, start a new FILE) or copytruncate (cp FILE FILE.N; truncate FILE)
#     DELAY: seconds between lines (default 0.01)
# Every line is "<basename> <n>", n from 1 to LINES, so a reader can check none is missing.
set -euo pipefail
file=$1; lines=${2:-1000}; every=${3:-0}; mode=${4:-rename}; delay=${5:-0.01}
name=$(basename "$file"); gen=0
for n in $(seq 1 "$lines"); do
    echo "$name $n" >>"$file"
    if [ "$every" -gt 0 ] && [ $((n % every)) -eq 0 ]; then
        gen=$((gen + 1))
        case "$mode" in
        rename) mv "$file" "$file.$gen" ;;
        copytruncate) cp "$file" "$file.$gen"; : >"$file" ;;
        esac
    fi
    [ "$delay" = 0 ] || sleep "$delay"
done
