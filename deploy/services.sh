#!/usr/bin/env bash
# Starts, stops and reports the real servers mora's tests run against, on 127.0.0.1:
#   Apache Kafka 4.x, one KRaft node (broker + controller), PLAINTEXT on 9092, transactions enabled;
#   Apache Cassandra 5.0 on CQL port 9042, the stand-in for ScyllaDB (same CQL protocol);
#   Apicurio Registry 3.0.9 on 8081 (in-memory), a schema registry serving Confluent's REST API under
#   /apis/ccompat/v7, with BACKWARD compatibility as Confluent's default;
#   and a Python environment with Confluent's client (confluent-kafka[avro]) for the registry tests.
# The servers are fetched once with Maven from Maven Central (deploy/services/*/pom.xml; the registry's archive
# with maven-dependency-plugin 2.8, which does not need its parent POM) into a cache outside the repository and run
# with the machine's Java 17+; the Python packages come from PyPI into a virtual environment in the same cache.
#
#   deploy/services.sh up        start what is not running, wait until each answers a real request
#   deploy/services.sh down      stop what `up` started (by pid)
#   deploy/services.sh stop|start kafka|cassandra|registry   one server only (the fault tests restart them)
#   deploy/services.sh status    say what runs and whether it answers
#   deploy/services.sh cluster-id [COUNT]   new KRaft cluster ids, as `up` makes them (never starting with '-')
#
# Cluster mode, for the fault tests (instead of the single servers: the ports overlap):
#   deploy/services.sh up --cluster    three Kafka 4.x KRaft nodes (each broker and controller, static quorum) on
#       127.0.0.1:9192, 9292, 9392, replication 3 and min.insync.replicas 2 by default and for the offsets and
#       transaction logs; three Cassandra nodes on 127.0.0.1, 127.0.0.2 and 127.0.0.3 (Linux routes the whole
#       loopback range), port 9042. Endpoints go to $RUN/cluster.env. Heaps: 512 MiB per broker, 1 GiB per node.
#   deploy/services.sh kill|freeze|thaw|stop|start kafka-1..3|cassandra-1..3   SIGKILL, SIGSTOP, SIGCONT, stop,
#       (re)start one node
#   deploy/services.sh down --cluster  stop everything and delete the cluster's data
#
# MORA_KAFKA_BROKERS / MORA_CQL_NODES / MORA_SCHEMA_REGISTRY_URL: use those endpoints instead; nothing is started
# for them.
# MORA_SERVICES_CACHE (jars, default ~/.cache/mora/services), MORA_SERVICES_RUN (data, logs, pids; default
# <repo>/.services).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SVC="$HERE/services"
CACHE=${MORA_SERVICES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mora/services}
RUN=${MORA_SERVICES_RUN:-$ROOT/.services}
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$SVC/kafka/pom.xml")
CASSANDRA_VERSION=$(sed -n 's:.*<cassandra.version>\(.*\)</cassandra.version>.*:\1:p' "$SVC/cassandra/pom.xml")
KAFKA_PORT=9092
KAFKA_CONTROLLER_PORT=9093
CQL_PORT=9042
STORAGE_PORT=7000
CASSANDRA_JMX_PORT=7199
REGISTRY_PORT=8081
APICURIO_VERSION=3.0.9
# Confluent's Python client, for the registry tests' producers and consumers.
CONFLUENT_KAFKA_VERSION=2.16.1
# Kafka needs far less than its 1 GiB default here; Cassandra gets 1 GiB (its heuristics would take a quarter of RAM).
KAFKA_HEAP=${MORA_KAFKA_HEAP:-512m}
CASSANDRA_HEAP=${MORA_CASSANDRA_HEAP:-1g}
READY_TIMEOUT=${MORA_SERVICES_TIMEOUT:-180}

log() { echo "services: $*" >&2; }
die() { echo "services: error: $*" >&2; exit 1; }

need_tools() {
  command -v java >/dev/null || die "Java 17 or newer is required (Debian: apt-get install openjdk-17-jre-headless)."
  local major
  major=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p')
  [ -n "$major" ] && [ "$major" -ge 17 ] || die "Java 17 or newer is required; found specification version '${major:-unknown}'."
  command -v mvn >/dev/null || die "Maven is required to fetch the servers (Debian: apt-get install maven)."
  command -v python3 >/dev/null || die "python3 is required for the readiness probes."
}

# fetch NAME VERSION: copies the server's jars from Maven Central into the cache, once.
fetch() {
  local name=$1 version=$2 dir="$CACHE/$1-$2"
  if [ -f "$dir/.complete" ]; then echo "$dir"; return; fi
  log "fetching $name $version from Maven Central (first use only) into $dir"
  rm -rf "$dir"; mkdir -p "$dir"
  if ! mvn -q -B -f "$SVC/$name/pom.xml" dependency:copy-dependencies -DoutputDirectory="$dir/libs" \
      >"$dir/fetch.log" 2>&1; then
    tail -n 30 "$dir/fetch.log" >&2
    die "could not fetch $name $version with Maven (log above, full log in $dir/fetch.log)."
  fi
  touch "$dir/.complete"
  echo "$dir"
}

# fetch_registry: Apicurio Registry's runnable archive from Maven Central, unpacked once.
fetch_registry() {
  local dir="$CACHE/apicurio-registry-$APICURIO_VERSION"
  if [ -f "$dir/.complete" ]; then echo "$dir"; return; fi
  log "fetching Apicurio Registry $APICURIO_VERSION from Maven Central (first use only) into $dir"
  rm -rf "$dir"; mkdir -p "$dir"
  if ! mvn -q -B org.apache.maven.plugins:maven-dependency-plugin:2.8:copy \
      -Dartifact="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all" -DoutputDirectory="$dir" \
      >"$dir/fetch.log" 2>&1; then
    tail -n 30 "$dir/fetch.log" >&2
    die "could not fetch Apicurio Registry $APICURIO_VERSION with Maven (full log in $dir/fetch.log)."
  fi
  tar -xzf "$dir/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz" -C "$dir" \
    || die "could not unpack Apicurio Registry's archive in $dir."
  rm -f "$dir/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz"
  touch "$dir/.complete"
  echo "$dir"
}

# python_env: a virtual environment with Confluent's Python client, once; prints its interpreter.
python_env() {
  local dir="$CACHE/python-confluent-$CONFLUENT_KAFKA_VERSION"
  if [ -f "$dir/.complete" ]; then echo "$dir/bin/python"; return; fi
  log "installing confluent-kafka[avro] $CONFLUENT_KAFKA_VERSION from PyPI (first use only) into $dir"
  rm -rf "$dir"
  python3 -m venv "$dir" >&2 || die "python3 -m venv failed (Debian: apt-get install python3-venv)."
  "$dir/bin/python" -m pip install -q "confluent-kafka[avro]==$CONFLUENT_KAFKA_VERSION" >&2 \
    || die "could not install confluent-kafka[avro] $CONFLUENT_KAFKA_VERSION from PyPI."
  touch "$dir/.complete"
  echo "$dir/bin/python"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
addr_port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

check_ports() {
  local what=$1; shift
  for p in "$@"; do
    port_open "$p" && die "port $p is already taken by another process, so $what cannot start. Stop that process, or point the tests at it with MORA_KAFKA_BROKERS / MORA_CQL_NODES."
  done
  return 0
}

# A KRaft cluster id: 16 random bytes in URL-safe base64. One starting with '-' would be read as an option (as
# Kafka's own generator does, draw again). With a count, that many (deploy/test.sh checks the generator).
new_cluster_id() {
  python3 -c 'import base64,sys,uuid
for _ in range(int(sys.argv[1])):
    while True:
        c = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not c.startswith("-"):
            break
    print(c)' "${1:-1}"
}

# start_kafka_node NAME PORT CONTROLLER_PORT CLUSTER_ID FORMAT_FLAGS: a KRaft node (broker and controller) whose
# server.properties the caller wrote to $RUN/NAME/server.properties; storage formatted on first start.
start_kafka_node() {
  local name=$1 port=$2 controller=$3 cluster=$4 format_flags=$5 pidf="$RUN/$1.pid" home
  if alive "$pidf"; then log "$name already running (pid $(cat "$pidf"))"; return; fi
  check_ports "Kafka ($name)" "$port" "$controller"
  home=$(fetch kafka "$KAFKA_VERSION")
  local cp="$home/libs/*" dir="$RUN/$name"
  local logging=(-Dkafka.logs.dir="$dir/logs" -Dlog4j2.configurationFile="$SVC/kafka/log4j2.yaml")
  if [ ! -f "$dir/data/meta.properties" ]; then
    # shellcheck disable=SC2086
    java -Xmx256m "${logging[@]}" -cp "$cp" kafka.tools.StorageTool format -t "$cluster" \
      -c "$dir/server.properties" $format_flags >"$dir/logs/format.log" 2>&1 \
      || { cat "$dir/logs/format.log" >&2; die "formatting $name's storage failed."; }
  fi
  nohup java -Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true "${logging[@]}" -cp "$cp" \
    kafka.Kafka "$dir/server.properties" >"$dir/logs/stdout.log" 2>&1 &
  echo $! >"$pidf"
  log "$name (Kafka $KAFKA_VERSION) starting (pid $(cat "$pidf")), logs in $dir/logs"
}

start_kafka() {
  mkdir -p "$RUN/kafka/data" "$RUN/kafka/logs"
  cat >"$RUN/kafka/server.properties" <<PROPS
# One KRaft node acting as broker and controller, for tests.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$RUN/kafka/data
num.partitions=1
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
PROPS
  local cluster=""
  [ -f "$RUN/kafka/data/meta.properties" ] || cluster=$(new_cluster_id)
  start_kafka_node kafka "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$cluster" --standalone
}

# Cluster mode: node i (1-3) of Kafka listens on 9i92 (controller 9i93); node i of Cassandra on 127.0.0.i.
cluster_kafka_port() { echo $((9092 + 100 * $1)); }
cluster_brokers() { echo "127.0.0.1:$(cluster_kafka_port 1),127.0.0.1:$(cluster_kafka_port 2),127.0.0.1:$(cluster_kafka_port 3)"; }
cluster_cql_nodes() { echo "127.0.0.1:$CQL_PORT,127.0.0.2:$CQL_PORT,127.0.0.3:$CQL_PORT"; }

# start_kafka_cluster_node I: one of three KRaft nodes (each broker and controller, static quorum), with
# replication 3 and min.insync.replicas 2 for every topic created without its own settings, and for the offsets and
# transaction state logs.
start_kafka_cluster_node() {
  local i=$1 name="kafka-$1" port controller voters
  port=$(cluster_kafka_port "$i"); controller=$((port + 1))
  voters="1@127.0.0.1:$(( $(cluster_kafka_port 1) + 1 )),2@127.0.0.1:$(( $(cluster_kafka_port 2) + 1 )),3@127.0.0.1:$(( $(cluster_kafka_port 3) + 1 ))"
  mkdir -p "$RUN/$name/data" "$RUN/$name/logs"
  cat >"$RUN/$name/server.properties" <<PROPS
# Node $i of a three-node KRaft cluster (each node broker and controller), for the fault tests.
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$RUN/$name/data
num.partitions=1
default.replication.factor=3
min.insync.replicas=2
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=3
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
PROPS
  [ -f "$RUN/kafka-cluster.id" ] || new_cluster_id >"$RUN/kafka-cluster.id"
  start_kafka_node "$name" "$port" "$controller" "$(cat "$RUN/kafka-cluster.id")" ""
}

# start_cassandra_node NAME ADDR JMX_PORT SEEDS [JVM_FLAGS...]: a Cassandra node in $RUN/NAME listening on ADDR.
start_cassandra_node() {
  local name=$1 addr=$2 jmx=$3 seeds=$4 pidf="$RUN/$1.pid" home
  shift 4
  if alive "$pidf"; then log "$name already running (pid $(cat "$pidf"))"; return; fi
  check_ports "Cassandra ($name)" "$jmx"
  addr_port_open "$addr" "$CQL_PORT" && die "$addr:$CQL_PORT is already taken, so $name cannot start."
  home=$(fetch cassandra "$CASSANDRA_VERSION")
  local c="$RUN/$name"
  mkdir -p "$c/data" "$c/commitlog" "$c/saved_caches" "$c/hints" "$c/cdc_raw" "$c/logs" "$c/tmp"
  sed -e "s#@DIR@#$c#g" -e "s#@ADDR@#$addr#g" -e "s#@SEEDS@#$seeds#g" -e "s#@CQL_PORT@#$CQL_PORT#g" \
    -e "s#@STORAGE_PORT@#$STORAGE_PORT#g" "$SVC/cassandra/cassandra.yaml.in" >"$c/cassandra.yaml"
  local jamm
  jamm=$(ls "$home"/libs/jamm-*.jar | head -n 1)
  local exports=(java.base/jdk.internal.misc java.management.rmi/com.sun.jmx.remote.internal.rmi
    java.management/com.sun.jmx.remote.security java.rmi/sun.rmi.registry java.rmi/sun.rmi.server java.sql/java.sql
    java.base/java.lang.ref jdk.unsupported/sun.misc)
  local opens=(java.base/java.lang.module java.base/jdk.internal.loader java.base/jdk.internal.ref
    java.base/jdk.internal.reflect java.base/jdk.internal.math java.base/jdk.internal.module
    java.base/jdk.internal.util.jar java.base/sun.nio.ch java.base/java.io java.base/java.lang.reflect
    java.base/java.lang java.base/java.util java.base/java.nio jdk.management/com.sun.management.internal)
  local flags=(-Xms"$CASSANDRA_HEAP" -Xmx"$CASSANDRA_HEAP" -Xss256k -XX:+UseG1GC -XX:MaxGCPauseMillis=300
    -XX:+ExitOnOutOfMemoryError -XX:+HeapDumpOnOutOfMemoryError -XX:HeapDumpPath="$c/logs"
    -Djava.net.preferIPv4Stack=true -Djdk.attach.allowAttachSelf=true -javaagent:"$jamm"
    -Dio.netty.tryReflectionSetAccessible=true -Dio.netty.allocator.useCacheForAllThreads=true
    -Dio.netty.allocator.maxOrder=11 -Dcassandra.jmx.local.port="$jmx"
    -Dcom.sun.management.jmxremote.authenticate=false -Dcassandra-foreground=yes
    -Dcassandra.config="file://$c/cassandra.yaml" -Dcassandra.storagedir="$c" -Dcassandra.logdir="$c/logs"
    -Dlogback.configurationFile="$SVC/cassandra/logback.xml" -Dcassandra.skip_wait_for_gossip_to_settle=0
    -Djava.io.tmpdir="$c/tmp" -Djna.tmpdir="$c/tmp" "$@")
  for e in "${exports[@]}"; do flags+=(--add-exports "$e=ALL-UNNAMED"); done
  for o in "${opens[@]}"; do flags+=(--add-opens "$o=ALL-UNNAMED"); done
  nohup java "${flags[@]}" -cp "$home/libs/*" org.apache.cassandra.service.CassandraDaemon \
    >"$c/logs/stdout.log" 2>&1 &
  echo $! >"$pidf"
  log "$name (Cassandra $CASSANDRA_VERSION) starting on $addr (pid $(cat "$pidf")), logs in $c/logs"
}

start_cassandra() {
  check_ports "Cassandra" "$CQL_PORT" "$STORAGE_PORT"
  start_cassandra_node cassandra 127.0.0.1 "$CASSANDRA_JMX_PORT" "127.0.0.1:$STORAGE_PORT"
}

# start_cassandra_cluster_node I: node i of three on 127.0.0.i (seed: node 1). The cluster is new and empty, so the
# nodes join without streaming (auto_bootstrap off) and may join together (consistent range movement off); the
# ring delay is shortened to suit a test machine.
start_cassandra_cluster_node() {
  local i=$1
  start_cassandra_node "cassandra-$i" "127.0.0.$i" $((CASSANDRA_JMX_PORT + 100 * i)) "127.0.0.1:$STORAGE_PORT" \
    -Dcassandra.auto_bootstrap=false -Dcassandra.consistent.rangemovement=false -Dcassandra.ring_delay_ms=5000
}

start_registry() {
  local pidf="$RUN/registry.pid" home
  if alive "$pidf"; then log "registry already running (pid $(cat "$pidf"))"; return; fi
  check_ports "the schema registry" "$REGISTRY_PORT"
  home=$(fetch_registry)
  mkdir -p "$RUN/registry"
  # In-memory storage: every start is an empty registry. Small heap, quick start.
  nohup java -Xmx192m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:+ExitOnOutOfMemoryError \
    -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$REGISTRY_PORT" \
    -jar "$home/apicurio-registry-app-$APICURIO_VERSION-runner.jar" >"$RUN/registry/stdout.log" 2>&1 &
  echo $! >"$pidf"
  log "registry (Apicurio $APICURIO_VERSION) starting (pid $(cat "$pidf")), log in $RUN/registry/stdout.log"
}

# Apicurio's default compatibility is NONE; Confluent's (and what producers expect) is BACKWARD.
registry_backward() {
  python3 - "http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7/config" <<'PY' || die "could not set the registry's compatibility to BACKWARD."
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1], data=json.dumps({"compatibility": "BACKWARD"}).encode(), method="PUT",
                             headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
with urllib.request.urlopen(req, timeout=10) as r:
    level = json.load(r).get("compatibilityLevel")
    assert level == "BACKWARD", level
PY
}

# wait_ready NAME PROBE ENDPOINT PIDFILE LOG
wait_ready() {
  local name=$1 probe=$2 endpoint=$3 pidf=$4 logf=$5 start=$SECONDS
  while true; do
    # shellcheck disable=SC2086 # the endpoint may carry the probe's extra argument (brokers expected)
    if python3 "$SVC/probe.py" "$probe" $endpoint >/dev/null 2>&1; then
      log "$name ready on $endpoint after $((SECONDS - start))s"
      return 0
    fi
    if [ -n "$pidf" ] && ! alive "$pidf"; then
      tail -n 40 "$logf" >&2 || true
      die "$name exited during startup (log tail above; full log: $logf)."
    fi
    if [ $((SECONDS - start)) -ge "$READY_TIMEOUT" ]; then
      tail -n 40 "$logf" >&2 || true
      die "$name did not answer on $endpoint within ${READY_TIMEOUT}s (log tail above; full log: $logf)."
    fi
    sleep 1
  done
}

stop() {
  local name=$1 pidf="$RUN/$1.pid"
  if ! alive "$pidf"; then rm -f "$pidf"; log "$name not running"; return; fi
  local pid
  pid=$(cat "$pidf")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do alive "$pidf" || break; sleep 0.5; done
  if alive "$pidf"; then log "$name did not stop in 30s; killing"; kill -9 "$pid" 2>/dev/null || true; fi
  rm -f "$pidf"
  log "$name stopped"
}

# start_one NAME: starts one server and waits until it answers.
start_one() {
  case "$1" in
    kafka) start_kafka; wait_ready kafka kafka "127.0.0.1:$KAFKA_PORT" "$RUN/kafka.pid" "$RUN/kafka/logs/server.log" ;;
    cassandra) start_cassandra; wait_ready cassandra cql "127.0.0.1:$CQL_PORT" "$RUN/cassandra.pid" "$RUN/cassandra/logs/system.log" ;;
    registry) start_registry; wait_ready registry registry "127.0.0.1:$REGISTRY_PORT" "$RUN/registry.pid" "$RUN/registry/stdout.log"; registry_backward ;;
    kafka-[123])
      start_kafka_cluster_node "${1#kafka-}"
      wait_ready "$1" kafka "127.0.0.1:$(cluster_kafka_port "${1#kafka-}")" "$RUN/$1.pid" "$RUN/$1/logs/server.log" ;;
    cassandra-[123])
      start_cassandra_cluster_node "${1#cassandra-}"
      wait_ready "$1" cql "127.0.0.${1#cassandra-}:$CQL_PORT" "$RUN/$1.pid" "$RUN/$1/logs/system.log" ;;
    *) die "unknown server '$1' (kafka, cassandra, registry; with --cluster kafka-1..3, cassandra-1..3)" ;;
  esac
}

ALL_SERVERS=(kafka cassandra registry kafka-1 kafka-2 kafka-3 cassandra-1 cassandra-2 cassandra-3)

# signal NAME SIG: sends SIG to a server this script started (the fault tests' kill -9, freeze and thaw).
signal() {
  local pidf="$RUN/$1.pid"
  alive "$pidf" || die "$1 is not running"
  kill -"$2" "$(cat "$pidf")"
  if [ "$2" = KILL ]; then
    while alive "$pidf"; do sleep 0.1; done
    rm -f "$pidf"
  fi
  log "$1: sent SIG$2"
}

cmd=${1:-}
case "$cmd" in
  up)
    mkdir -p "$RUN"
    need_tools
    if [ "${2:-}" = "--cluster" ]; then
      # Three Kafka nodes and three Cassandra nodes: Cassandra's seed first, then the other two together.
      for i in 1 2 3; do start_kafka_cluster_node "$i"; done
      start_cassandra_cluster_node 1
      for i in 1 2 3; do wait_ready "kafka-$i" kafka "127.0.0.1:$(cluster_kafka_port "$i")" "$RUN/kafka-$i.pid" "$RUN/kafka-$i/logs/server.log"; done
      wait_ready "kafka cluster" kafka "127.0.0.1:$(cluster_kafka_port 1) 3" "" ""
      wait_ready cassandra-1 cql "127.0.0.1:$CQL_PORT" "$RUN/cassandra-1.pid" "$RUN/cassandra-1/logs/system.log"
      for i in 2 3; do start_cassandra_cluster_node "$i"; done
      for i in 2 3; do wait_ready "cassandra-$i" cql "127.0.0.$i:$CQL_PORT" "$RUN/cassandra-$i.pid" "$RUN/cassandra-$i/logs/system.log"; done
      # Answering CQL is not enough: until every node sees the other two, a keyspace created on one node can be
      # missing on another (the driver's schema agreement only asks the nodes the coordinator knows).
      for i in 1 2 3; do wait_ready "cassandra-$i ring" cql "127.0.0.$i:$CQL_PORT 3" "$RUN/cassandra-$i.pid" "$RUN/cassandra-$i/logs/system.log"; done
      cat >"$RUN/cluster.env" <<ENV
export MORA_KAFKA_BROKERS=$(cluster_brokers)
export MORA_CQL_NODES=$(cluster_cql_nodes)
export MORA_CLUSTER=3
ENV
      log "cluster endpoints written to $RUN/cluster.env"
      exit 0
    fi
    py=$(python_env)
    [ -n "${MORA_KAFKA_BROKERS:-}" ] || start_kafka
    [ -n "${MORA_CQL_NODES:-}" ] || start_cassandra
    [ -n "${MORA_SCHEMA_REGISTRY_URL:-}" ] || start_registry
    [ -n "${MORA_SCHEMA_REGISTRY_URL:-}" ] || { wait_ready registry registry "127.0.0.1:$REGISTRY_PORT" "$RUN/registry.pid" "$RUN/registry/stdout.log"; registry_backward; }
    [ -n "${MORA_KAFKA_BROKERS:-}" ] || wait_ready kafka kafka "127.0.0.1:$KAFKA_PORT" "$RUN/kafka.pid" "$RUN/kafka/logs/server.log"
    [ -n "${MORA_CQL_NODES:-}" ] || wait_ready cassandra cql "127.0.0.1:$CQL_PORT" "$RUN/cassandra.pid" "$RUN/cassandra/logs/system.log"
    cat >"$RUN/env" <<ENV
export MORA_KAFKA_BROKERS=${MORA_KAFKA_BROKERS:-127.0.0.1:$KAFKA_PORT}
export MORA_CQL_NODES=${MORA_CQL_NODES:-127.0.0.1:$CQL_PORT}
export MORA_SCHEMA_REGISTRY_URL=${MORA_SCHEMA_REGISTRY_URL:-http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7}
export MORA_PYTHON=$py
ENV
    log "endpoints written to $RUN/env"
    ;;
  down)
    # Everything this script started, single servers and cluster nodes alike (thawed first if frozen).
    for s in "${ALL_SERVERS[@]}"; do
      alive "$RUN/$s.pid" && kill -CONT "$(cat "$RUN/$s.pid")" 2>/dev/null
      if [ -f "$RUN/$s.pid" ] || [[ "$s" != *-* ]]; then stop "$s"; fi
    done
    if [ "${2:-}" = "--cluster" ]; then
      # The cluster's data goes too: the next `up --cluster` starts a new, empty cluster.
      rm -rf "$RUN"/kafka-[123] "$RUN"/cassandra-[123] "$RUN/kafka-cluster.id" "$RUN/cluster.env"
    fi
    ;;
  stop)
    # One server only (fault tests): deploy/services.sh stop cassandra
    [ -n "${2:-}" ] || die "usage: $0 stop NAME"
    stop "$2"
    ;;
  start)
    # One server only, after `stop NAME` or `kill NAME`: deploy/services.sh start cassandra
    mkdir -p "$RUN"
    need_tools
    start_one "${2:-}"
    ;;
  kill) signal "${2:?usage: $0 kill NAME}" KILL ;;
  freeze) signal "${2:?usage: $0 freeze NAME}" STOP ;;
  thaw) signal "${2:?usage: $0 thaw NAME}" CONT ;;
  cluster-id) new_cluster_id "${2:-1}" ;;
  status)
    for s in "${ALL_SERVERS[@]}"; do
      if alive "$RUN/$s.pid"; then echo "$s: running (pid $(cat "$RUN/$s.pid"))"
      elif [[ "$s" != *-* ]]; then echo "$s: not started by this script"; fi
    done
    python3 "$SVC/probe.py" kafka "${MORA_KAFKA_BROKERS:-127.0.0.1:$KAFKA_PORT}" || true
    python3 "$SVC/probe.py" cql "${MORA_CQL_NODES:-127.0.0.1:$CQL_PORT}" || true
    python3 "$SVC/probe.py" registry "127.0.0.1:$REGISTRY_PORT" || true
    ;;
  *)
    echo "usage: $0 up [--cluster]|down [--cluster]|status|stop NAME|start NAME|kill NAME|freeze NAME|thaw NAME|cluster-id [COUNT]" >&2
    exit 2
    ;;
esac
