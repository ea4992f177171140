#!/usr/bin/env bash
# The benchmark (not a test): logcatch next to the raw rdkafka producer, same broker, same run.
#   scripts/bench.sh           full scenarios (about 15 minutes); writes the table to BENCHMARKS.md's run file
#   scripts/bench.sh --quick   shortened scenarios (about 5 minutes)
#   scripts/bench.sh --only live,idle   some scenarios (catch-up, live, idle, reaction, codecs, fleet,
#                                       exactly-once: with --broker kafka, multiline, checkpoint,
#                                       many: 10,000 files, slow: 1,000 slow writers, confine,
#                                       compressed: a gzip generation against the same lines plain,
#                                       filters, encoding, rate-limit)
#   scripts/bench.sh --broker kafka     on Apache Kafka 4.x (scripts/kafka.sh, one KRaft node)
#                                       instead of tansu
# The static release binary (scripts/static-build.sh) is measured as a column beside the glibc
# build in catch-up and live tail; LOGCATCH_STATIC_BIN= (empty) leaves it out.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/logcatch/target}"
bash scripts/install-deps.sh --bench >/dev/null
bash scripts/kafka.sh install 2>/dev/null
mkdir -p run
if [ -z "${LOGCATCH_STATIC_BIN+set}" ]; then
    bash scripts/static-build.sh >/dev/null
    export LOGCATCH_STATIC_BIN="$CARGO_TARGET_DIR/x86_64-unknown-linux-musl/release/logcatch"
fi
BENCH_OUT="$PWD/run/bench-table.md" cargo bench --bench bench -- "$@"
echo "(table also in run/bench-table.md)"
