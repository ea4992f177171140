#!/usr/bin/env bash
# Starts or stops a local etcd: one member, or the origin's 3-member cluster.
#   scripts/etcd.sh start [PORT]   one member, clients on PORT (default 2379), peers on PORT+1
#   scripts/etcd.sh cluster        three members: clients 2379, 3379, 4379; peers 2380, 2381, 2382
#   scripts/etcd.sh stop           stops what this script started
# Data and PIDs live in ${LOGCATCH_RUN_DIR:-./run}/etcd. Starting what runs already is a no-op.
set -euo pipefail
cmd=${1:-}; shift || true
run_dir=${LOGCATCH_RUN_DIR:-./run}/etcd
mkdir -p "$run_dir"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_member() { # NAME CLIENT_PORT PEER_PORT INITIAL_CLUSTER
    local name=$1 cport=$2 pport=$3 cluster=$4 pidf="$run_dir/$1.pid"
    if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
        echo "etcd: $name already running (clients on 127.0.0.1:$cport)"; return 0
    fi
    if port_open "$cport"; then echo "etcd: port $cport is taken by another process" >&2; return 1; fi
    nohup etcd --name "$name" --data-dir "$run_dir/$name.data" \
        --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
        --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
        --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token logcatch \
        >"$run_dir/$name.log" 2>&1 &
    echo $! >"$pidf"
}

wait_ready() { # CLIENT_PORT
    for _ in $(seq 1 150); do
        if curl -fs -X POST "http://127.0.0.1:$1/v3/kv/range" -d '{"key":"AA=="}' >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    echo "etcd: member on port $1 did not become ready; see $run_dir/*.log" >&2; return 1
}

case "$cmd" in
start)
    port=${1:-2379}
    start_member "m$port" "$port" $((port + 1)) "m$port=http://127.0.0.1:$((port + 1))"
    wait_ready "$port"; echo "etcd: ready on 127.0.0.1:$port" ;;
cluster)
    cluster="c1=http://127.0.0.1:2380,c2=http://127.0.0.1:2381,c3=http://127.0.0.1:2382"
    start_member c1 2379 2380 "$cluster"; start_member c2 3379 2381 "$cluster"; start_member c3 4379 2382 "$cluster"
    for p in 2379 3379 4379; do wait_ready "$p"; done
    echo "etcd: cluster ready on 127.0.0.1:2379, :3379, :4379" ;;
stop)
    for pidf in "$run_dir"/*.pid; do
        [ -f "$pidf" ] || continue
        kill "$(cat "$pidf")" 2>/dev/null || true; rm -f "$pidf"
    done
    echo "etcd: stopped" ;;
*)
    echo "usage: $0 start [PORT] | cluster | stop" >&2; exit 2 ;;
esac
