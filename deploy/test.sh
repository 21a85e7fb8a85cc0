#!/usr/bin/env bash
# The test command: starts the real servers the tests need (Apache Kafka, Apache Cassandra; see services.sh), runs
# the whole workspace test suite (unit, property, server-free integration, and the integration tests against the
# servers: the `services` feature of mora-tests), stops the servers (also on failure) and exits with the tests'
# status. MORA_KEEP_SERVICES=1 leaves the servers running for the next run. CONTRIBUTING.md explains the tiers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v cargo >/dev/null || { echo "test.sh: cargo is required (https://rustup.rs)" >&2; exit 1; }

started=$(date +%s)
# Build everything first, so the servers are not left waiting on the compiler.
cargo test --workspace --features mora-tests/services --no-run
# The fault tests run the engine binary as a subprocess.
cargo build -p mora

stop_services() {
  if [ "${MORA_KEEP_SERVICES:-0}" != "1" ]; then deploy/services.sh down || true; fi
}
trap stop_services EXIT
deploy/services.sh up
# shellcheck disable=SC1091
source "${MORA_SERVICES_RUN:-.services}/env"

status=0
cargo test --workspace --features mora-tests/services || status=$?
# Tests that restart a shared server run alone, after the rest.
cargo test -p mora-tests --features services --test integration -- --ignored --test-threads=1 || status=$?
echo "test.sh: finished in $(( $(date +%s) - started ))s with status $status" >&2
exit "$status"
