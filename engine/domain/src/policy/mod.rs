//! The compliance guard: jurisdiction policies as data, compiled once, checked for every candidate action.

mod compile;
mod config;
mod guard;

pub use compile::{Policies, Policy};
pub use config::{
    CapConfig, ConsentConfig, ConsentMode, Counts, DiversityConfig, GapConfig, HoldKind,
    HolidayCalendarConfig, PolicyConfig, WindowConfig,
};
pub use guard::{BlockReason, Verdict};
