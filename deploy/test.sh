#!/usr/bin/env bash
# The test command: starts the real servers the tests need (Apache Kafka, Apache Cassandra; see services.sh), runs
# the whole workspace test suite (unit, property, server-free integration, and the integration tests against the
# servers: the `services` feature of mora-tests), stops the servers (also on failure) and exits with the tests'
# status. MORA_KEEP_SERVICES=1 leaves the servers running for the next run. CONTRIBUTING.md explains the tiers.
# Then the fault tests: the single servers stop, a three-broker, three-node cluster starts (`services.sh up
# --cluster`), and each fault test runs against it; their table goes to target/fault-report.md.
#   deploy/test.sh            everything
#   deploy/test.sh --faults   the fault tests only (builds, starts the cluster, runs them, stops it)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

only_faults=0
case "${1:-}" in
  "") ;;
  --faults) only_faults=1 ;;
  *) echo "usage: $0 [--faults]" >&2; exit 2 ;;
esac

command -v cargo >/dev/null || { echo "test.sh: cargo is required (https://rustup.rs)" >&2; exit 1; }

started=$(date +%s)

# The API's description, served verbatim at /openapi.json, must be valid OpenAPI 3.0.3: a real validator checks it
# (PyPI's openapi-spec-validator, pinned, in a virtual environment of its own made once).
OPENAPI_VALIDATOR_VERSION=0.9.0
validator="${XDG_CACHE_HOME:-$HOME/.cache}/mora/tools/openapi-spec-validator-$OPENAPI_VALIDATOR_VERSION"
if [ ! -f "$validator/.complete" ]; then
  rm -rf "$validator"
  python3 -m venv "$validator" || { echo "test.sh: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2; exit 1; }
  "$validator/bin/python" -m pip install -q "openapi-spec-validator==$OPENAPI_VALIDATOR_VERSION"
  touch "$validator/.complete"
fi
"$validator/bin/python" -m openapi_spec_validator app/src/api/openapi.json
# KRaft cluster ids as `up` makes them: 22 characters of URL-safe base64, none starting with '-' (the storage tool
# reads such an id as an option); without the guard, 2 000 draws would hold about 31 that do.
python3 - <(deploy/services.sh cluster-id 2000) <<'PY'
import re, sys
ids = open(sys.argv[1]).read().split()
assert len(ids) == 2000 and len(set(ids)) == 2000, "2 000 distinct ids"
bad = [i for i in ids if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", i)]
assert not bad, f"cluster ids an option parser would misread or that are not 16 bytes in URL-safe base64: {bad[:3]}"
print("cluster ids: 2 000 drawn, none starts with '-'")
PY
# Build everything first, so the servers are not left waiting on the compiler.
cargo test --workspace --features mora-tests/services --no-run
# The fault tests run the engine binary as a subprocess.
cargo build -p mora

stop_services() {
  if [ "${MORA_KEEP_SERVICES:-0}" != "1" ]; then deploy/services.sh down || true; fi
}
trap stop_services EXIT

status=0
if [ "$only_faults" = 0 ]; then
  deploy/services.sh up
  # shellcheck disable=SC1091
  source "${MORA_SERVICES_RUN:-.services}/env"
  cargo test --workspace --features mora-tests/services || status=$?
  # Tests that restart a shared server run alone, after the rest.
  cargo test -p mora-tests --features services --test integration -- --ignored --skip faults:: --test-threads=1 \
    || status=$?
  deploy/services.sh down
fi

# The fault tests, on a cluster of their own (its ports overlap the single servers').
trap 'deploy/services.sh down --cluster || true' EXIT
deploy/services.sh down --cluster
deploy/services.sh up --cluster
report=target/fault-report.md
{
  echo "| fault | events | actions expected | delivered | duplicated | stored debtors differing | fault to first commit after it | notes |"
  echo "|---|---|---|---|---|---|---|---|"
} >"$report"
(
  # shellcheck disable=SC1091
  source "${MORA_SERVICES_RUN:-.services}/cluster.env"
  MORA_FAULT_REPORT="$PWD/$report" cargo test -p mora-tests --features services --test integration -- \
    --ignored faults:: --test-threads=1
) || status=$?
echo "test.sh: fault table ($report):" >&2
cat "$report" >&2
echo "test.sh: finished in $(( $(date +%s) - started ))s with status $status" >&2
exit "$status"
