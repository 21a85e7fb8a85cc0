//! The symbols of the output schemas' enums, in the order the `.avsc` files declare them: both writers (the
//! generic reference and the direct binary one) and the reader index them the same way.

use mora_domain::action::DecisionKind;
use mora_domain::stage::Stage;

/// The `DecisionKind` enum's symbols, by index.
pub(crate) const DECISION_KINDS: [(DecisionKind, &str); 9] = [
    (DecisionKind::Emitted, "emitted"),
    (DecisionKind::Deferred, "deferred"),
    (DecisionKind::Dropped, "dropped"),
    (DecisionKind::Cancelled, "cancelled"),
    (DecisionKind::Suppressed, "suppressed"),
    (DecisionKind::PromiseKept, "promise_kept"),
    (DecisionKind::PromiseBroken, "promise_broken"),
    (DecisionKind::Reclassified, "reclassified"),
    (DecisionKind::Noted, "noted"),
];

/// The `Stage` enum's index of a stage.
pub(crate) fn stage_index(s: Stage) -> usize {
    Stage::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

/// The `DecisionKind` enum's index of a kind.
pub(crate) fn kind_index(k: DecisionKind) -> usize {
    DECISION_KINDS
        .iter()
        .position(|(x, _)| *x == k)
        .unwrap_or(0)
}
