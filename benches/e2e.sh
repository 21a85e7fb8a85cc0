#!/usr/bin/env bash
# The end-to-end benchmark in one command: builds the harness, starts the real broker and database (see
# deploy/services.sh), runs mora and the Kafka Streams peer (benches/peers/kafka-streams, built with Maven) through
# the same log in both delivery modes, and stops the servers. Arguments go to the harness (`--help` lists them);
# the report and plots land in out/e2e/. MORA_KEEP_SERVICES=1 leaves the servers running.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v cargo >/dev/null || { echo "e2e.sh: cargo is required (https://rustup.rs)" >&2; exit 1; }
command -v mvn >/dev/null || { echo "e2e.sh: Maven (mvn) is required to build the peer" >&2; exit 1; }

cargo build --release -p mora-benches --bin e2e
stop_services() {
  if [ "${MORA_KEEP_SERVICES:-0}" != "1" ]; then deploy/services.sh down || true; fi
}
trap stop_services EXIT
deploy/services.sh up
# shellcheck disable=SC1091
source "${MORA_SERVICES_RUN:-.services}/env"
target/release/e2e "$@"
