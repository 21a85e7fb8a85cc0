//! The embedded schemas, parsed once, and the schema ids of the Confluent wire format.

use std::collections::HashMap;
use std::sync::OnceLock;

use apache_avro::Schema;

/// Input topic families: each has one envelope schema whose payload is a union of its event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// Debtor master data, consent, charge-off, agency placement.
    Account,
    /// Obligations and payment plans.
    Obligation,
    /// Payments, reversals and credit notes.
    Payment,
    /// Promises to pay.
    Promise,
    /// Disputes.
    Dispute,
    /// Contact outcomes from channel gateways.
    ContactOutcome,
    /// Clock records: time passing, per partition (not debtor events; see [`crate::ClockTick`]).
    Clock,
}

impl Family {
    /// Every family, in topic order.
    pub const ALL: [Family; 7] = [
        Family::Account,
        Family::Obligation,
        Family::Payment,
        Family::Promise,
        Family::Dispute,
        Family::ContactOutcome,
        Family::Clock,
    ];

    /// The family's name (`contact_outcome`...), used in topic names and configuration.
    pub fn name(self) -> &'static str {
        match self {
            Family::Account => "account",
            Family::Obligation => "obligation",
            Family::Payment => "payment",
            Family::Promise => "promise",
            Family::Dispute => "dispute",
            Family::ContactOutcome => "contact_outcome",
            Family::Clock => "clock",
        }
    }

    /// Parses a family name.
    pub fn parse(s: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.name() == s)
    }
}

/// What a schema describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchemaKind {
    /// An input envelope.
    Event(Family),
    /// A contact action.
    Action,
    /// A decision audit record.
    Audit,
    /// A dead-letter record.
    DeadLetter,
}

impl SchemaKind {
    /// A name for error messages.
    pub fn name(self) -> &'static str {
        match self {
            SchemaKind::Event(f) => f.name(),
            SchemaKind::Action => "contact_action",
            SchemaKind::Audit => "decision_audit",
            SchemaKind::DeadLetter => "dead_letter",
        }
    }
}

/// Framing of an Avro payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Wire {
    /// The Avro body alone, written with the current schema.
    Raw,
    /// Magic byte 0, four-byte big-endian schema id, Avro body.
    #[default]
    Confluent,
}

/// Schema sources: (id, kind, current?, text). Ids are this engine's built-in numbering; a deployment with a schema
/// registry registers these texts and maps its ids onto them.
const SCHEMAS: &[(u32, SchemaKind, bool, &str)] = &[
    (
        1,
        SchemaKind::Event(Family::Account),
        true,
        include_str!("../avro/account.avsc"),
    ),
    (
        2,
        SchemaKind::Event(Family::Obligation),
        true,
        include_str!("../avro/obligation.avsc"),
    ),
    (
        3,
        SchemaKind::Event(Family::Payment),
        true,
        include_str!("../avro/payment.avsc"),
    ),
    (
        4,
        SchemaKind::Event(Family::Promise),
        true,
        include_str!("../avro/promise.avsc"),
    ),
    (
        5,
        SchemaKind::Event(Family::Dispute),
        true,
        include_str!("../avro/dispute.avsc"),
    ),
    (
        6,
        SchemaKind::Event(Family::ContactOutcome),
        true,
        include_str!("../avro/contact_outcome.avsc"),
    ),
    // Actions and audit records before the strategy arm was added (version 1).
    (
        7,
        SchemaKind::Action,
        false,
        include_str!("../avro/compat/contact_action.v1.avsc"),
    ),
    (
        8,
        SchemaKind::Audit,
        false,
        include_str!("../avro/compat/decision_audit.v1.avsc"),
    ),
    (
        9,
        SchemaKind::DeadLetter,
        true,
        include_str!("../avro/dead_letter.avsc"),
    ),
    // Account events before `region` was added (version 1): still readable through schema resolution.
    (
        10,
        SchemaKind::Event(Family::Account),
        false,
        include_str!("../avro/compat/account.v1.avsc"),
    ),
    (
        11,
        SchemaKind::Event(Family::Clock),
        true,
        include_str!("../avro/clock.avsc"),
    ),
    (
        12,
        SchemaKind::Action,
        true,
        include_str!("../avro/contact_action.avsc"),
    ),
    // Audit records before subject, previous and the debtor's figures were added (version 2).
    (
        13,
        SchemaKind::Audit,
        false,
        include_str!("../avro/compat/decision_audit.v2.avsc"),
    ),
    (
        14,
        SchemaKind::Audit,
        true,
        include_str!("../avro/decision_audit.avsc"),
    ),
];

/// Longest allocation a decoder may make for one string, byte or array length prefix: a garbage length prefix
/// fails fast instead of reserving gigabytes.
const MAX_ALLOCATION_BYTES: usize = 16 << 20;

/// All known schemas.
#[derive(Debug)]
pub struct Registry {
    by_id: HashMap<u32, (SchemaKind, Schema)>,
    /// The current schema id of each kind: a dozen entries, searched in order (cheaper than hashing the kind, and
    /// every input record asks).
    current: Vec<(SchemaKind, u32)>,
}

impl Registry {
    /// The process-wide registry (parsed on first use).
    pub fn global() -> &'static Registry {
        static REGISTRY: OnceLock<Registry> = OnceLock::new();
        REGISTRY.get_or_init(|| {
            apache_avro::util::max_allocation_bytes(MAX_ALLOCATION_BYTES);
            let mut by_id = HashMap::new();
            let mut current = Vec::new();
            for (id, kind, is_current, text) in SCHEMAS {
                // The schemas are compiled into the binary and covered by tests: a parse failure is a build defect.
                let schema = Schema::parse_str(text).unwrap_or_else(|e| {
                    panic!(
                        "embedded schema {} (id {id}) does not parse: {e}",
                        kind.name()
                    )
                });
                by_id.insert(*id, (*kind, schema));
                if *is_current {
                    current.push((*kind, *id));
                }
            }
            Registry { by_id, current }
        })
    }

    /// The current schema of `kind` and its id.
    pub fn current(&self, kind: SchemaKind) -> (u32, &Schema) {
        let id = self.current_id(kind);
        (id, &self.by_id[&id].1)
    }

    /// The id of the current schema of `kind`.
    pub fn current_id(&self, kind: SchemaKind) -> u32 {
        self.current
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, id)| *id)
            .unwrap_or_else(|| panic!("no current schema of kind {}", kind.name()))
    }

    /// The schema with id `id`.
    pub fn by_id(&self, id: u32) -> Option<(SchemaKind, &Schema)> {
        self.by_id.get(&id).map(|(k, s)| (*k, s))
    }

    /// The `.avsc` text of the current schema of `kind`, as mora registers it with a schema registry (the canonical
    /// form drops logical types and defaults, which resolution needs).
    pub fn source(&self, kind: SchemaKind) -> &'static str {
        let id = self.current_id(kind);
        SCHEMAS
            .iter()
            .find(|(i, ..)| *i == id)
            .map(|(.., text)| *text)
            .unwrap_or_default()
    }

    /// The canonical text of the current schema of `kind` (Avro's Parsing Canonical Form).
    pub fn canonical(&self, kind: SchemaKind) -> String {
        self.current(kind).1.canonical_form()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_current_schema_of_its_own_kind() {
        let kinds = Family::ALL.into_iter().map(SchemaKind::Event).chain([
            SchemaKind::Action,
            SchemaKind::Audit,
            SchemaKind::DeadLetter,
        ]);
        for kind in kinds {
            let current = SCHEMAS.iter().filter(|(_, k, c, _)| *k == kind && *c);
            assert_eq!(current.count(), 1, "{}", kind.name());
            let id = Registry::global().current_id(kind);
            assert_eq!(Registry::global().by_id(id).map(|(k, _)| k), Some(kind));
        }
    }
}
