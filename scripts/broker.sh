#!/usr/bin/env bash
# Starts or stops a local tansu broker (Kafka-compatible) in the background.
#   scripts/broker.sh start [PORT]     (default 9092; in-memory storage, or TANSU_STORAGE=sqlite://FILE, FILE relative to the run dir)
#   scripts/broker.sh stop [PORT]
#   scripts/broker.sh topic NAME [PORT]   create a topic (tansu does not auto-create them)
# The PID and log live in ${LOGCATCH_RUN_DIR:-./run}. Starting an already running broker is a no-op.
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
cmd=${1:-}; shift || true
run_dir=${LOGCATCH_RUN_DIR:-./run}
mkdir -p "$run_dir"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

case "$cmd" in
start)
    port=${1:-9092}
    pidf="$run_dir/tansu-$port.pid"
    if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
        echo "broker: already running on 127.0.0.1:$port (pid $(cat "$pidf"))"; exit 0
    fi
    if port_open "$port"; then echo "broker: port $port is taken by another process" >&2; exit 1; fi
    url="tcp://127.0.0.1:$port"
    # The pid file is written inside the subshell that changed directory (run_dir may be relative).
    (cd "$run_dir" && { nohup tansu broker --listener-url "$url" --advertised-listener-url "$url" \
        --storage-engine "${TANSU_STORAGE:-memory://tansu/}" >"tansu-$port.log" 2>&1 & echo $! >"tansu-$port.pid"; })
    for _ in $(seq 1 150); do
        if port_open "$port"; then echo "broker: listening on 127.0.0.1:$port (pid $(cat "$pidf"))"; exit 0; fi
        sleep 0.2
    done
    echo "broker: did not start; see $run_dir/tansu-$port.log" >&2; exit 1 ;;
stop)
    port=${1:-9092}
    pidf="$run_dir/tansu-$port.pid"
    if [ -f "$pidf" ]; then kill "$(cat "$pidf")" 2>/dev/null || true; rm -f "$pidf"; echo "broker: stopped"; fi ;;
topic)
    name=$1; port=${2:-9092}
    tansu topic create "$name" --broker "tcp://127.0.0.1:$port" --partitions 1 >/dev/null 2>&1 \
        || echo "broker: topic $name not created (it may exist already)" ;;
*)
    echo "usage: $0 start|stop [PORT] | topic NAME [PORT]" >&2; exit 2 ;;
esac
