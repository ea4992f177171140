#!/usr/bin/env bash
# The seeded fault soak (issue 26; tests/soak.rs): the release binary, Apache Kafka (one node,
# scripts/kafka.sh), etcd and Debian's logrotate, writers at mixed rates, rotations in every
# logrotate style and a schedule of faults drawn from the seed; at the end every line written is
# accounted for (arrived once, more than once, lost), and a never-killed agent's descriptors,
# threads, RSS and store must have stayed flat.
#   scripts/soak.sh --minutes 60 --seed 7 [--delivery at_least_once|exactly_once] [--hog N]
# --hog N runs N busy loops beside it the whole time (a host's build: the agent short of CPU).
# --until SECS ends it early with the same schedules (a replay of a fault found at SECS - 30).
# The seed and the schedules are printed first: the same seed replays the same soak.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/logcatch/target}"
minutes=10 seed=1 delivery=at_least_once hog=0 until=
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) minutes="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        --delivery) delivery="$2"; shift 2 ;;
        --hog) hog="$2"; shift 2 ;;
        --until) until="$2"; shift 2 ;;
        *) echo "soak.sh: unknown argument $1 (see the head of this script)" >&2; exit 2 ;;
    esac
done
case "$delivery" in at_least_once|exactly_once) ;; *) echo "soak.sh: --delivery at_least_once or exactly_once" >&2; exit 2 ;; esac
bash scripts/install-deps.sh
bash scripts/kafka.sh install
export SOAK_MINUTES="$minutes" SOAK_SEED="$seed" SOAK_DELIVERY="$delivery" SOAK_HOG="$hog"
[ -z "$until" ] || export SOAK_UNTIL="$until"
exec cargo test --release --test soak -- --nocapture
