//! What the engine emits: contact actions and the audit trail of every decision.

use compact_str::CompactString;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{Xxh3, xxh3_128};

use crate::ids::{Channel, DebtorId};
use crate::money::Balances;
use crate::stage::Stage;
use crate::time::Ts;

/// A deterministic action id: 128 bits of XXH3 over the debtor, rule, step and cause, as 32 hex digits.
///
/// The same inputs always give the same id, so a replay recomputes the ids it already sent and a gateway can drop
/// duplicates by id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ActionId(pub CompactString);

impl ActionId {
    /// Derives an id from its parts (separated unambiguously by their lengths).
    pub fn derive(parts: &[&[u8]]) -> Self {
        Self(hex128(id_hash(parts)))
    }
}

/// The parts of an id, each after its length, hashed: laid out in a buffer on the stack and hashed in one call when
/// they fit (ids, rules and causes are short), else streamed. XXH3 gives the same hash of the same bytes either
/// way; setting up a streaming state cost several times the hash of a short input.
fn id_hash(parts: &[&[u8]]) -> u128 {
    let mut buf = [0u8; 256];
    let mut at = 0;
    for p in parts {
        let Some(field) = buf.get_mut(at..at + 8 + p.len()) else {
            return streamed_hash(parts);
        };
        field[..8].copy_from_slice(&(p.len() as u64).to_le_bytes());
        field[8..].copy_from_slice(p);
        at += 8 + p.len();
    }
    xxh3_128(&buf[..at])
}

fn streamed_hash(parts: &[&[u8]]) -> u128 {
    let mut h = Xxh3::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.digest128()
}

/// `v` as 32 lowercase hexadecimal digits (what `{:032x}` gives, without the formatting machinery: one per action).
fn hex128(v: u128) -> CompactString {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = DIGITS[((v >> (124 - 4 * i)) & 0xf) as usize];
    }
    // Every byte is an ASCII digit.
    CompactString::from_utf8(out).unwrap_or_default()
}

/// Why an action exists: the rule and step that produced it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// Strategy id.
    pub strategy: CompactString,
    /// Step id (`on_broken_promise` and `on_paid_in_full` for event-driven steps).
    pub step: CompactString,
    /// What triggered it: `schedule` or the event kind.
    pub trigger: CompactString,
}

/// One contact action for a channel gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// Deterministic id.
    pub action_id: ActionId,
    /// Debtor.
    pub debtor_id: DebtorId,
    /// Channel (and so topic).
    pub channel: Channel,
    /// Message or script template.
    pub template: CompactString,
    /// Outstanding debt per currency when decided.
    pub amounts_due: Balances,
    /// Overdue amount in the base currency.
    #[serde(with = "crate::serde_forms::amount")]
    pub overdue_base: Decimal,
    /// Days past due.
    pub dpd: u16,
    /// Stage.
    pub stage: Stage,
    /// Segment name.
    pub segment: CompactString,
    /// Priority score (hundredths).
    pub priority: i64,
    /// The rule and step.
    pub reason: Reason,
    /// Jurisdiction whose policy cleared it.
    pub jurisdiction: CompactString,
    /// When it was decided.
    pub created_at: Ts,
    /// Earliest send time.
    pub not_before: Ts,
    /// Latest send time (end of the contact window), `None` when no window applies.
    pub not_after: Option<Ts>,
    /// The strategy arm that produced it (`champion` unless a challenger; see champion/challenger).
    #[serde(default)]
    pub arm: CompactString,
}

/// The kind of decision an audit record documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// Action emitted.
    Emitted,
    /// Action deferred by the guard.
    Deferred,
    /// Action dropped by the guard.
    Dropped,
    /// Queued action cancelled (payment, dispute).
    Cancelled,
    /// Strategy step not taken for a treatment reason (promise open, agency placement).
    Suppressed,
    /// A promise to pay was kept.
    PromiseKept,
    /// A promise to pay broke at its deadline.
    PromiseBroken,
    /// Stage or segment changed.
    Reclassified,
    /// A fact kept for the trail with no action decided: a contact outcome naming an action this debtor was not
    /// sent (accepted, since manual calls are real; reason `unmatched_action`, the action id as `subject`).
    Noted,
}

impl DecisionKind {
    /// Every kind, in declaration order (`kind as usize` is its place here).
    pub const ALL: [DecisionKind; 9] = [
        DecisionKind::Emitted,
        DecisionKind::Deferred,
        DecisionKind::Dropped,
        DecisionKind::Cancelled,
        DecisionKind::Suppressed,
        DecisionKind::PromiseKept,
        DecisionKind::PromiseBroken,
        DecisionKind::Reclassified,
        DecisionKind::Noted,
    ];

    /// The kind's name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Emitted => "emitted",
            DecisionKind::Deferred => "deferred",
            DecisionKind::Dropped => "dropped",
            DecisionKind::Cancelled => "cancelled",
            DecisionKind::Suppressed => "suppressed",
            DecisionKind::PromiseKept => "promise_kept",
            DecisionKind::PromiseBroken => "promise_broken",
            DecisionKind::Reclassified => "reclassified",
            DecisionKind::Noted => "noted",
        }
    }
}

/// One decision, taken or not, with the rule and reason: the trail regulators ask for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Debtor.
    pub debtor_id: DebtorId,
    /// When.
    pub at: Ts,
    /// Kind of decision.
    pub kind: DecisionKind,
    /// The action concerned, if any.
    pub action_id: Option<ActionId>,
    /// Its channel, if any.
    pub channel: Option<Channel>,
    /// Rule: `strategy/<id>/<step>`, `policy/<jurisdiction>` or `aging`.
    pub rule: CompactString,
    /// Reason code (`frequency_cap`, `payment_received`, `stage:administrative`...).
    pub reason: CompactString,
    /// For deferrals: when the guard will be asked again.
    pub until: Option<Ts>,
    /// The strategy in force for the debtor (or that produced the action concerned), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<CompactString>,
    /// Its arm, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<CompactString>,
    /// What the record is about besides an action: the promise kept or broken, the event (payment, dispute) that
    /// cancelled queued actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<CompactString>,
    /// For a reclassification, what it was before (`stage:preventive`, `segment:standard`); `reason` says what it
    /// is now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<CompactString>,
    /// The debtor as the decision saw it, so the decision can be reconstructed without running the engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debtor: Option<DebtorAtDecision>,
}

/// The figures of a debtor a decision was taken on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DebtorAtDecision {
    /// Days past due, in the debtor's local calendar.
    pub dpd: u16,
    /// Aging bucket.
    pub bucket: CompactString,
    /// Collection stage.
    pub stage: CompactString,
    /// Segment.
    pub segment: CompactString,
    /// Priority score.
    pub priority: i64,
}

#[cfg(test)]
mod tests {
    use super::{hex128, id_hash, streamed_hash};

    #[test]
    fn ids_hash_alike_whether_laid_out_or_streamed() {
        let long = vec![b'x'; 300];
        let cases: [&[&[u8]]; 6] = [
            &[],
            &[b""],
            &[b"D-1", b"early", b"sms-d1", b"due:739000"],
            &[b"D-1", b"", b"a"],
            &[&long[..240]],
            &[b"D-1", &long],
        ];
        for parts in cases {
            assert_eq!(id_hash(parts), streamed_hash(parts), "{parts:?}");
        }
        // Lengths separate the parts: the same bytes split differently hash differently.
        assert_ne!(id_hash(&[b"ab", b"c"]), id_hash(&[b"a", b"bc"]));
    }

    #[test]
    fn ids_are_the_32_digit_lowercase_hex_of_their_hash() {
        for v in [
            0u128,
            1,
            0xabc,
            u128::MAX,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        ] {
            assert_eq!(hex128(v), format!("{v:032x}"));
        }
    }
}
