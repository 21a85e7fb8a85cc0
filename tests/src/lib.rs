//! Integration tests of mora live in `integration/`, one module per area, run as one test binary:
//! `cargo test -p mora-tests` runs the server-free areas; `cargo test -p mora-tests --features services` adds those
//! that need Kafka and CQL. Those read their endpoints from the environment (see `deploy/services.sh`) and fail,
//! saying how to start them, when none is reachable.
