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
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

check_ports() {
  local what=$1; shift
  for p in "$@"; do
    port_open "$p" && die "port $p is already taken by another process, so $what cannot start. Stop that process, or point the tests at it with MORA_KAFKA_BROKERS / MORA_CQL_NODES."
  done
  return 0
}

start_kafka() {
  local pidf="$RUN/kafka.pid" home
  if alive "$pidf"; then log "kafka already running (pid $(cat "$pidf"))"; return; fi
  check_ports "Kafka" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"
  home=$(fetch kafka "$KAFKA_VERSION")
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
  local cp="$home/libs/*"
  local logging=(-Dkafka.logs.dir="$RUN/kafka/logs" -Dlog4j2.configurationFile="$SVC/kafka/log4j2.yaml")
  if [ ! -f "$RUN/kafka/data/meta.properties" ]; then
    local cluster
    # A KRaft cluster id: 16 random bytes in URL-safe base64. One starting with '-' would be read as an option (as
    # Kafka's own generator does, draw again).
    cluster=$(python3 -c 'import base64,uuid
while True:
    c = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not c.startswith("-"):
        break
print(c)')
    java -Xmx256m "${logging[@]}" -cp "$cp" kafka.tools.StorageTool format -t "$cluster" \
      -c "$RUN/kafka/server.properties" --standalone >"$RUN/kafka/logs/format.log" 2>&1 \
      || { cat "$RUN/kafka/logs/format.log" >&2; die "formatting Kafka's storage failed."; }
  fi
  nohup java -Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true "${logging[@]}" -cp "$cp" \
    kafka.Kafka "$RUN/kafka/server.properties" >"$RUN/kafka/logs/stdout.log" 2>&1 &
  echo $! >"$pidf"
  log "kafka $KAFKA_VERSION starting (pid $(cat "$pidf")), logs in $RUN/kafka/logs"
}

start_cassandra() {
  local pidf="$RUN/cassandra.pid" home
  if alive "$pidf"; then log "cassandra already running (pid $(cat "$pidf"))"; return; fi
  check_ports "Cassandra" "$CQL_PORT" "$STORAGE_PORT" "$CASSANDRA_JMX_PORT"
  home=$(fetch cassandra "$CASSANDRA_VERSION")
  local c="$RUN/cassandra"
  mkdir -p "$c/data" "$c/commitlog" "$c/saved_caches" "$c/hints" "$c/cdc_raw" "$c/logs" "$c/tmp"
  sed -e "s#@RUN@#$RUN#g" -e "s#@CQL_PORT@#$CQL_PORT#g" -e "s#@STORAGE_PORT@#$STORAGE_PORT#g" \
    "$SVC/cassandra/cassandra.yaml.in" >"$c/cassandra.yaml"
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
    -Dio.netty.allocator.maxOrder=11 -Dcassandra.jmx.local.port=$CASSANDRA_JMX_PORT
    -Dcom.sun.management.jmxremote.authenticate=false -Dcassandra-foreground=yes
    -Dcassandra.config="file://$c/cassandra.yaml" -Dcassandra.storagedir="$c" -Dcassandra.logdir="$c/logs"
    -Dlogback.configurationFile="$SVC/cassandra/logback.xml" -Dcassandra.skip_wait_for_gossip_to_settle=0
    -Djava.io.tmpdir="$c/tmp" -Djna.tmpdir="$c/tmp")
  for e in "${exports[@]}"; do flags+=(--add-exports "$e=ALL-UNNAMED"); done
  for o in "${opens[@]}"; do flags+=(--add-opens "$o=ALL-UNNAMED"); done
  nohup java "${flags[@]}" -cp "$home/libs/*" org.apache.cassandra.service.CassandraDaemon \
    >"$c/logs/stdout.log" 2>&1 &
  echo $! >"$pidf"
  log "cassandra $CASSANDRA_VERSION starting (pid $(cat "$pidf")), logs in $c/logs"
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
    if python3 "$SVC/probe.py" "$probe" "$endpoint" >/dev/null 2>&1; then
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

cmd=${1:-}
case "$cmd" in
  up)
    mkdir -p "$RUN"
    need_tools
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
    stop kafka
    stop cassandra
    stop registry
    ;;
  stop)
    # One server only (fault tests): deploy/services.sh stop cassandra
    case "${2:-}" in kafka|cassandra|registry) stop "$2" ;; *) die "usage: $0 stop kafka|cassandra|registry" ;; esac
    ;;
  start)
    # One server only, after `stop NAME`: deploy/services.sh start cassandra
    mkdir -p "$RUN"
    need_tools
    case "${2:-}" in
      kafka) start_kafka; wait_ready kafka kafka "127.0.0.1:$KAFKA_PORT" "$RUN/kafka.pid" "$RUN/kafka/logs/server.log" ;;
      cassandra) start_cassandra; wait_ready cassandra cql "127.0.0.1:$CQL_PORT" "$RUN/cassandra.pid" "$RUN/cassandra/logs/system.log" ;;
      registry) start_registry; wait_ready registry registry "127.0.0.1:$REGISTRY_PORT" "$RUN/registry.pid" "$RUN/registry/stdout.log"; registry_backward ;;
      *) die "usage: $0 start kafka|cassandra|registry" ;;
    esac
    ;;
  status)
    for s in kafka cassandra registry; do
      if alive "$RUN/$s.pid"; then echo "$s: running (pid $(cat "$RUN/$s.pid"))"; else echo "$s: not started by this script"; fi
    done
    python3 "$SVC/probe.py" kafka "${MORA_KAFKA_BROKERS:-127.0.0.1:$KAFKA_PORT}" || true
    python3 "$SVC/probe.py" cql "${MORA_CQL_NODES:-127.0.0.1:$CQL_PORT}" || true
    python3 "$SVC/probe.py" registry "127.0.0.1:$REGISTRY_PORT" || true
    ;;
  *)
    echo "usage: $0 up|down|status|stop NAME|start NAME" >&2
    exit 2
    ;;
esac
