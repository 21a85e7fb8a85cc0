//! Days past due, aging buckets and collection stages.

use serde::{Deserialize, Serialize};

use crate::config_error::ConfigError;
use crate::stage::Stage;

/// Aging configuration: bucket and stage edges in days past due.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgingConfig {
    /// Buckets in order; each holds DPD up to and including `max_dpd`, the last one is open-ended.
    #[serde(default = "default_buckets")]
    pub buckets: Vec<BucketConfig>,
    /// Stages by DPD in order, the last open-ended; charged-off debtors are always `judicial`.
    #[serde(default = "default_stages")]
    pub stages: Vec<StageConfig>,
}

impl Default for AgingConfig {
    fn default() -> Self {
        Self {
            buckets: default_buckets(),
            stages: default_stages(),
        }
    }
}

/// One aging bucket.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    /// Name shown in portfolio figures and used by segmentation rules.
    pub name: String,
    /// Highest DPD in the bucket; omitted on the last bucket.
    pub max_dpd: Option<u16>,
}

/// One stage band.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// The stage.
    pub stage: Stage,
    /// Highest DPD in the band; omitted on the last band.
    pub max_dpd: Option<u16>,
}

// The aging buckets of domain.md: pre-delinquency, 1-30, 31-60, 61-90, 91-180, over 180.
fn default_buckets() -> Vec<BucketConfig> {
    [
        ("current", Some(0)),
        ("1-30", Some(30)),
        ("31-60", Some(60)),
        ("61-90", Some(90)),
        ("91-180", Some(180)),
        ("181+", None),
    ]
    .into_iter()
    .map(|(n, m)| BucketConfig {
        name: n.to_string(),
        max_dpd: m,
    })
    .collect()
}

// The seeds' stage table: not yet due → preventive, 1-90 → administrative, over 90 → extrajudicial.
fn default_stages() -> Vec<StageConfig> {
    vec![
        StageConfig {
            stage: Stage::Preventive,
            max_dpd: Some(0),
        },
        StageConfig {
            stage: Stage::Administrative,
            max_dpd: Some(90),
        },
        StageConfig {
            stage: Stage::Extrajudicial,
            max_dpd: None,
        },
    ]
}

/// Compiled aging rules.
#[derive(Clone, Debug)]
pub struct Aging {
    names: Vec<String>,
    bucket_max: Vec<u16>,
    stages: Vec<(Stage, u16)>,
}

fn check_edges<'a>(
    field: &str,
    edges: impl Iterator<Item = Option<u16>> + 'a,
    len: usize,
) -> Result<Vec<u16>, ConfigError> {
    if len == 0 {
        return Err(ConfigError::invalid(field, "needs at least one entry"));
    }
    let mut out = Vec::with_capacity(len);
    let mut prev: Option<u16> = None;
    for (i, e) in edges.enumerate() {
        let last = i + 1 == len;
        match (e, last) {
            (Some(_), true) => {
                return Err(ConfigError::invalid(
                    format!("{field}[{i}].max_dpd"),
                    "the last entry must be open-ended (no max_dpd)",
                ));
            }
            (None, false) => {
                return Err(ConfigError::invalid(
                    format!("{field}[{i}].max_dpd"),
                    "required on every entry but the last",
                ));
            }
            (Some(m), false) => {
                if prev.is_some_and(|p| m <= p) {
                    return Err(ConfigError::invalid(
                        format!("{field}[{i}].max_dpd"),
                        "must be greater than the previous entry's",
                    ));
                }
                prev = Some(m);
                out.push(m);
            }
            (None, true) => out.push(u16::MAX),
        }
    }
    Ok(out)
}

impl Aging {
    /// Validates and compiles.
    pub fn new(cfg: &AgingConfig) -> Result<Self, ConfigError> {
        let bucket_max = check_edges(
            "buckets",
            cfg.buckets.iter().map(|b| b.max_dpd),
            cfg.buckets.len(),
        )?;
        let stage_max = check_edges(
            "stages",
            cfg.stages.iter().map(|s| s.max_dpd),
            cfg.stages.len(),
        )?;
        for (i, b) in cfg.buckets.iter().enumerate() {
            if b.name.is_empty() || cfg.buckets[..i].iter().any(|x| x.name == b.name) {
                return Err(ConfigError::invalid(
                    format!("buckets[{i}].name"),
                    "must be non-empty and unique",
                ));
            }
        }
        for (i, s) in cfg.stages.iter().enumerate() {
            if s.stage == Stage::Judicial {
                return Err(ConfigError::invalid(
                    format!("stages[{i}].stage"),
                    "judicial is set by charge-off, not by DPD",
                ));
            }
        }
        Ok(Self {
            names: cfg.buckets.iter().map(|b| b.name.clone()).collect(),
            bucket_max,
            stages: cfg.stages.iter().map(|s| s.stage).zip(stage_max).collect(),
        })
    }

    /// Bucket names in order.
    pub fn bucket_names(&self) -> &[String] {
        &self.names
    }

    /// Index of the bucket named `name`.
    pub fn bucket_index(&self, name: &str) -> Option<u8> {
        self.names.iter().position(|n| n == name).map(|i| i as u8)
    }

    /// The bucket holding `dpd`.
    pub fn bucket(&self, dpd: u16) -> u8 {
        self.bucket_max
            .iter()
            .position(|&m| dpd <= m)
            .unwrap_or(self.bucket_max.len() - 1) as u8
    }

    /// The stage for `dpd` (charge-off is handled by the caller).
    pub fn stage(&self, dpd: u16) -> Stage {
        self.stages
            .iter()
            .find(|(_, m)| dpd <= *m)
            .map(|(s, _)| *s)
            .unwrap_or(Stage::Extrajudicial)
    }

    /// The smallest DPD above `dpd` at which the bucket or the stage changes, if any.
    pub fn next_edge(&self, dpd: u16) -> Option<u16> {
        self.bucket_max
            .iter()
            .chain(self.stages.iter().map(|(_, m)| m))
            .filter(|&&m| m >= dpd && m != u16::MAX)
            .min()
            .map(|m| m + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_edges_follow_the_domain_table() {
        let a = Aging::new(&AgingConfig::default()).unwrap();
        let names = a.bucket_names();
        let at = |dpd| names[a.bucket(dpd) as usize].as_str();
        assert_eq!(
            (
                at(0),
                at(1),
                at(30),
                at(31),
                at(90),
                at(91),
                at(180),
                at(181),
                at(5000)
            ),
            (
                "current", "1-30", "1-30", "31-60", "61-90", "91-180", "91-180", "181+", "181+"
            )
        );
        assert_eq!(
            (a.stage(0), a.stage(1), a.stage(90), a.stage(91)),
            (
                Stage::Preventive,
                Stage::Administrative,
                Stage::Administrative,
                Stage::Extrajudicial
            )
        );
        assert_eq!(a.next_edge(0), Some(1));
        assert_eq!(a.next_edge(5), Some(31));
        assert_eq!(a.next_edge(181), None);
    }

    #[test]
    fn unordered_edges_are_refused_naming_the_field() {
        let mut cfg = AgingConfig::default();
        cfg.buckets[2].max_dpd = Some(10);
        let err = Aging::new(&cfg).unwrap_err();
        assert_eq!(err.field, "buckets[2].max_dpd");
    }
}
