//! The error every configuration check returns: which field, and why.

use thiserror::Error;

/// A configuration value that failed validation. The loader adds the file it came from.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{field}`: {reason}")]
pub struct ConfigError {
    /// Dotted path of the offending field, e.g. `segmentation.rules[2].amount_min`.
    pub field: String,
    /// What is wrong with it, in words a user can act on.
    pub reason: String,
}

impl ConfigError {
    /// Builds an error for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Prefixes the field path with `parent` (`parent.field`).
    pub fn within(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() {
            parent.to_string()
        } else if self.field.starts_with('[') {
            format!("{parent}{}", self.field)
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}
