//! Integration tests of mora live in `integration/`, one module per area, run as one test binary:
//! `cargo test -p mora-tests`. Tests that need servers read their endpoints from the environment (see
//! `deploy/services.sh`) and fail, saying how to start them, when none is reachable.
