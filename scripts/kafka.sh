#!/usr/bin/env bash
# Apache Kafka (KRaft) for the tests, the benchmark and people, from Maven Central; idempotent.
#
#   scripts/kafka.sh install                 fetch the jars (skipped when present)
#   scripts/kafka.sh start single DIR        one combined broker+controller node
#   scripts/kafka.sh start cluster DIR       3 combined nodes: replication factor 3,
#                                            min.insync.replicas=2
#   scripts/kafka.sh start secure DIR        one node with TLS listeners too (SSL=, SASL_SSL=, PKI=)
#   scripts/kafka.sh start proxied DIR       one node with a listener advertised at PROXY_PORT,
#                                            for a proxy of the caller's forwarding to PROXY_TARGET
#   scripts/kafka.sh stop DIR                stop every node of DIR (by PID)
#   scripts/kafka.sh topic DIR NAME [PARTITIONS]   create a topic (replication: all nodes)
#
# `start` returns once every broker accepts requests and prints `BOOTSTRAP=host:port[,...]`;
# it writes DIR/node-<id>.pid, DIR/node-<id>.log and DIR/ports. Started again on a DIR it
# already formatted, the nodes come back with their data on the same ports (a broker restart).
# Jars: ~/.cache/logcatch/kafka-<version>/libs (KAFKA_LIBS overrides). Heap: -Xmx384m per node
# (KAFKA_HEAP overrides), so three nodes fit on 2 cores beside the tests.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
LIBS="${KAFKA_LIBS:-$HOME/.cache/logcatch/kafka-$KAFKA_VERSION/libs}"
HEAP="${KAFKA_HEAP:--Xmx384m -Xms64m}"

install() {
    if [ -f "$LIBS/.complete" ]; then
        echo "kafka.sh: Apache Kafka $KAFKA_VERSION jars already in $LIBS" >&2
        return
    fi
    if ! command -v mvn >/dev/null 2>&1 || ! command -v java >/dev/null 2>&1; then
        echo "kafka.sh: apt-get install maven openjdk-17-jre-headless" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq maven openjdk-17-jre-headless >/dev/null
    fi
    echo "kafka.sh: fetching Apache Kafka $KAFKA_VERSION from Maven Central into $LIBS" >&2
    rm -rf "$LIBS" && mkdir -p "$LIBS"
    (cd "$here/kafka" && mvn -q -B dependency:copy-dependencies -Dkafka.version="$KAFKA_VERSION" \
        -DincludeScope=runtime -DoutputDirectory="$LIBS") >&2
    touch "$LIBS/.complete"
}

java_run() { # java_run MAIN ARGS...
    java $HEAP -XX:+UseSerialGC -XX:ActiveProcessorCount=2 -Djava.awt.headless=true -cp "$LIBS/*" "$@"
}

# A loopback port that nothing listens on, below the ephemeral range (no client can take it).
free_port() {
    local p
    while :; do
        p=$(( 12000 + (RANDOM * 32768 + RANDOM) % 18000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && ! grep -qw "$p" "$dir/ports" 2>/dev/null; then
            echo "$p"
            return
        fi
    done
}

# `secure` mode: a TLS listener that requires a client certificate (SSL) and a TLS listener with
# SASL (SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN; user logcatch, password logcatch-secret), beside
# the plain one the tests read from. Certificates from scripts/pki.sh in DIR/pki.
secure_listeners() { # secure_listeners ID
    grep -q '^secure=1' "$dir/ports" || return 0
    printf ',SSL://127.0.0.1:%s,SASL_SSL://127.0.0.1:%s' \
        "$(sed -n "s/^ssl$1=//p" "$dir/ports")" "$(sed -n "s/^sasl$1=//p" "$dir/ports")"
}

# `proxied` mode: a second plaintext listener whose advertised port is another one, where the
# caller runs a TCP proxy of its own that forwards to it (the soak's network faults: clients that
# bootstrap through the proxy are told to come back through it).
proxied_listener() { # proxied_listener listen|advertise
    grep -q '^proxied=1' "$dir/ports" || return 0
    if [ "$1" = listen ]; then
        printf ',PROXIED://127.0.0.1:%s' "$(sed -n 's/^proxyin1=//p' "$dir/ports")"
    else
        printf ',PROXIED://127.0.0.1:%s' "$(sed -n 's/^proxyout1=//p' "$dir/ports")"
    fi
}

secure_props() {
    grep -q '^secure=1' "$dir/ports" || return 0
    cat <<EOF
ssl.keystore.type=PEM
ssl.keystore.location=$dir/pki/server-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$dir/pki/ca.pem
listener.name.ssl.ssl.client.auth=required
listener.name.sasl_ssl.ssl.client.auth=none
sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_logcatch="logcatch-secret";
EOF
}

node_props() { # node_props ID NODES
    local id=$1 n=$2 voters="" i bport cport rf=$2 isr
    isr=$(( n >= 3 ? 2 : 1 ))
    for i in $(seq 1 "$n"); do
        voters+="${voters:+,}$i@127.0.0.1:$(sed -n "s/^controller$i=//p" "$dir/ports")"
    done
    bport=$(sed -n "s/^broker$id=//p" "$dir/ports")
    cport=$(sed -n "s/^controller$id=//p" "$dir/ports")
    cat <<EOF
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$bport,CONTROLLER://127.0.0.1:$cport$(secure_listeners "$id")$(proxied_listener listen)
advertised.listeners=PLAINTEXT://127.0.0.1:$bport$(secure_listeners "$id")$(proxied_listener advertise)
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL,PROXIED:PLAINTEXT
log.dirs=$dir/node-$id/data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
group.initial.rebalance.delay.ms=0
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000
auto.create.topics.enable=false
num.network.threads=2
num.io.threads=2
log.flush.interval.messages=9223372036854775807
EOF
    secure_props
}

start() { # start single|cluster DIR
    local mode=$1 n id pid
    case "$mode" in single|secure|proxied) n=1 ;; cluster) n=3 ;; *) echo "kafka.sh: start single|cluster|secure|proxied DIR" >&2; exit 2 ;; esac
    install
    mkdir -p "$dir"
    if [ ! -f "$dir/ports" ]; then
        : > "$dir/ports"
        for id in $(seq 1 "$n"); do
            echo "broker$id=$(free_port)" >> "$dir/ports"
            echo "controller$id=$(free_port)" >> "$dir/ports"
        done
        echo "nodes=$n" >> "$dir/ports"
        if [ "$mode" = secure ]; then
            { echo "ssl1=$(free_port)"; echo "sasl1=$(free_port)"; echo "secure=1"; } >> "$dir/ports"
            bash "$here/pki.sh" "$dir/pki"
        fi
        if [ "$mode" = proxied ]; then
            { echo "proxyin1=$(free_port)"; echo "proxyout1=$(free_port)"; echo "proxied=1"; } >> "$dir/ports"
        fi
    fi
    n=$(sed -n 's/^nodes=//p' "$dir/ports")
    local cluster_id
    if [ ! -f "$dir/cluster.id" ]; then
        java_run kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1 > "$dir/cluster.id"
    fi
    cluster_id=$(cat "$dir/cluster.id")
    for id in $(seq 1 "$n"); do
        if [ -f "$dir/node-$id.pid" ] && kill -0 "$(cat "$dir/node-$id.pid")" 2>/dev/null; then
            continue
        fi
        node_props "$id" "$n" > "$dir/node-$id.properties"
        if [ ! -f "$dir/node-$id/data/meta.properties" ]; then
            local scram=()
            if grep -q '^secure=1' "$dir/ports"; then
                scram=(--add-scram 'SCRAM-SHA-512=[name=logcatch,password=logcatch-secret]'
                       --add-scram 'SCRAM-SHA-256=[name=logcatch,password=logcatch-secret]')
            fi
            java_run kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/node-$id.properties" \
                --ignore-formatted "${scram[@]}" >> "$dir/node-$id.log" 2>&1
        fi
        nohup java $HEAP -XX:+UseSerialGC -XX:ActiveProcessorCount=2 -Djava.awt.headless=true \
            -cp "$LIBS/*" kafka.Kafka "$dir/node-$id.properties" >> "$dir/node-$id.log" 2>&1 < /dev/null &
        echo $! > "$dir/node-$id.pid"
    done
    # Ready: every node says it started and its broker port accepts connections.
    local deadline=$(( $(date +%s) + 120 )) bootstrap=""
    for id in $(seq 1 "$n"); do
        local port
        port=$(sed -n "s/^broker$id=//p" "$dir/ports")
        until grep -q "Kafka Server started" "$dir/node-$id.log" 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
            pid=$(cat "$dir/node-$id.pid")
            if ! kill -0 "$pid" 2>/dev/null; then
                echo "kafka.sh: node $id exited; the end of $dir/node-$id.log:" >&2
                tail -20 "$dir/node-$id.log" >&2
                exit 1
            fi
            if [ "$(date +%s)" -ge "$deadline" ]; then
                echo "kafka.sh: node $id not ready in 120 s; the end of $dir/node-$id.log:" >&2
                tail -20 "$dir/node-$id.log" >&2
                exit 1
            fi
            sleep 0.2
        done
        # The line counts once per start: remove it so a restart waits for its own.
        sed -i 's/Kafka Server started/Kafka Server started (earlier start)/' "$dir/node-$id.log"
        bootstrap+="${bootstrap:+,}127.0.0.1:$port"
    done
    echo "$bootstrap" > "$dir/bootstrap"
    echo "BOOTSTRAP=$bootstrap"
    if grep -q '^secure=1' "$dir/ports"; then
        echo "SSL=127.0.0.1:$(sed -n 's/^ssl1=//p' "$dir/ports")"
        echo "SASL_SSL=127.0.0.1:$(sed -n 's/^sasl1=//p' "$dir/ports")"
        echo "PKI=$dir/pki"
    fi
    if grep -q '^proxied=1' "$dir/ports"; then
        # The proxy listens on PROXY_PORT and forwards to PROXY_TARGET; clients bootstrap there.
        echo "PROXY_PORT=$(sed -n 's/^proxyout1=//p' "$dir/ports")"
        echo "PROXY_TARGET=127.0.0.1:$(sed -n 's/^proxyin1=//p' "$dir/ports")"
    fi
}

stop() {
    local f pid
    for f in "$dir"/node-*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        kill -TERM "$pid" 2>/dev/null || true
    done
    for f in "$dir"/node-*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$f"
    done
}

topic() { # topic NAME [PARTITIONS]
    local n
    n=$(sed -n 's/^nodes=//p' "$dir/ports")
    java_run org.apache.kafka.tools.TopicCommand --bootstrap-server "$(cat "$dir/bootstrap")" --create \
        --topic "$1" --partitions "${2:-1}" --replication-factor "$n" >&2
}

cmd=${1:-}
case "$cmd" in
    install) install ;;
    start) dir=$(mkdir -p "$3" && cd "$3" && pwd); start "$2" ;;
    stop) dir=$(cd "$2" && pwd); stop ;;
    topic) dir=$(cd "$2" && pwd); topic "$3" "${4:-1}" ;;
    *) echo "usage: scripts/kafka.sh install | start single|cluster DIR | stop DIR | topic DIR NAME [PARTITIONS]" >&2; exit 2 ;;
esac
