//! # mora-domain
//!
//! The decision core of mora, the real-time collections engine: plain data and pure functions, no I/O, no clock,
//! no async. Everything the engine decides is `Engine::process(state, input, now) -> (state', actions, audit)`, so
//! every rule is unit-testable in microseconds and a replay of the same log gives the same actions.
//!
//! ```
//! use mora_domain::prelude::*;
//! # use mora_domain::testkit;
//! let engine = testkit::engine();
//! let mut debtor = Debtor::new("D-1".into());
//! let mut out = Decisions::default();
//! let now = testkit::ts("2026-03-02T14:00:00Z");
//! let event = testkit::debtor_upserted("D-1", "CO", "America/Bogota", now);
//! engine.process(&mut debtor, Input::Event(&event), now, &mut out).unwrap();
//! assert_eq!(debtor.derived.stage, Stage::Preventive);
//! ```

pub mod account;
pub mod action;
pub mod aging;
pub mod amount;
pub mod config_error;
pub mod debtor;
mod debtor_form;
pub mod engine;
pub mod event;
pub mod facts;
pub mod ids;
pub mod ledger;
pub mod money;
pub mod policy;
pub mod priority;
pub mod queues;
pub mod rejected;
pub mod segment;
pub mod serde_forms;
pub mod stage;
pub mod strategy;
pub mod sym;
pub mod testkit;
pub mod time;

#[cfg(test)]
mod tests;

/// The types most users of the crate need.
pub mod prelude {
    pub use crate::action::{Action, ActionId, AuditRecord, DecisionKind, Reason};
    pub use crate::config_error::ConfigError;
    pub use crate::debtor::Debtor;
    pub use crate::engine::{Decisions, Engine, EngineConfig, Input};
    pub use crate::event::{Envelope, EventKind, Outcome, Profile};
    pub use crate::ids::{Channel, ChannelSet, Currency, DebtorId};
    pub use crate::policy::{BlockReason, HolidayCalendarConfig, PolicyConfig, Verdict};
    pub use crate::rejected::Rejected;
    pub use crate::stage::Stage;
    pub use crate::time::Ts;
}
