//! Collection stages: where a debtor stands in the collection process, from reminders before the due date to the
//! courts. Actions, segments and the debtor's derived state all name one, so it sits below them all.

use serde::{Deserialize, Serialize};

/// Collection stage.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Not yet due: reminders.
    #[default]
    Preventive,
    /// Early and mid delinquency: calls, messages, agreements.
    Administrative,
    /// Severe delinquency: letters, bureau notice, agencies.
    Extrajudicial,
    /// Charged off: lawsuit, garnishment, debt sale.
    Judicial,
}

impl Stage {
    /// Every stage in order.
    pub const ALL: [Stage; 4] = [
        Stage::Preventive,
        Stage::Administrative,
        Stage::Extrajudicial,
        Stage::Judicial,
    ];

    /// The stage's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Preventive => "preventive",
            Stage::Administrative => "administrative",
            Stage::Extrajudicial => "extrajudicial",
            Stage::Judicial => "judicial",
        }
    }

    /// `stage:<name>`, as reclassification records write it.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Preventive => "stage:preventive",
            Stage::Administrative => "stage:administrative",
            Stage::Extrajudicial => "stage:extrajudicial",
            Stage::Judicial => "stage:judicial",
        }
    }

    /// Parses a stage name.
    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::Stage;

    #[test]
    fn a_label_is_the_name_tagged_and_names_parse_back() {
        for s in Stage::ALL {
            assert_eq!(s.label(), format!("stage:{}", s.as_str()));
            assert_eq!(Stage::parse(s.as_str()), Some(s));
        }
    }
}
