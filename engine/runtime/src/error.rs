//! Error classes: what the loop does about an error, decided by the error rather than by its message.
//!
//! Every error that reaches a loop says which [`ErrorClass`] it is in. Bad input never stops a partition (it goes
//! to the dead-letter port with its reason), a transient fault is retried with backoff while input waits, and a
//! fatal one stops the instance with a message naming what an operator must fix.

use std::error::Error;
use std::fmt::Write;

/// A boxed error that keeps its source chain.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// What the loop does about an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass {
    /// A record that cannot be used: dead-lettered with its reason and origin; the partition moves on.
    BadInput,
    /// A server that did not answer or refused for now: retried with backoff, input paused meanwhile.
    Transient,
    /// Retrying will not help: the instance stops with a clear message (wrong configuration, fenced producer,
    /// store not set up, a broken invariant).
    Fatal,
}

/// An error that knows its class.
pub trait Classify {
    /// The class of this error.
    fn class(&self) -> ErrorClass;
}

impl Classify for mora_schemas::DecodeError {
    fn class(&self) -> ErrorClass {
        ErrorClass::BadInput
    }
}

impl Classify for mora_domain::rejected::Rejected {
    fn class(&self) -> ErrorClass {
        ErrorClass::BadInput
    }
}

/// `error` and its sources on one line, outermost first (`a: b: c`), for logs and status fields.
pub fn chain(error: &(dyn Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        let s = e.to_string();
        // Messages that already end with their source's text are not repeated.
        if !out.ends_with(&s) {
            let _ = write!(out, ": {s}");
        }
        next = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn a_chain_names_every_cause_once() {
        let e = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(chain(&e), "outer: disk on fire");
        let store = crate::StoreError::Unavailable(Box::new(e));
        assert_eq!(store.class(), ErrorClass::Transient);
        assert!(
            chain(&store).ends_with("outer: disk on fire"),
            "{}",
            chain(&store)
        );
    }
}
