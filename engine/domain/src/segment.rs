//! Segmentation: ordered rules, the first that matches names the debtor's segment.

use compact_str::CompactString;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::aging::Aging;
use crate::config_error::ConfigError;
use crate::debtor::{Debtor, PaymentHistory};
use crate::event::CustomerType;
use crate::ids::Channel;
use crate::sym::Sym;

/// Segmentation configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentationConfig {
    /// Segment of a debtor no rule matches.
    pub default_segment: String,
    /// Rules, tried in order; the first that matches wins. Every criterion left out matches anything.
    #[serde(default)]
    pub rules: Vec<SegmentRule>,
}

/// One segmentation rule: all of its criteria must hold.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentRule {
    /// The segment this rule assigns.
    pub segment: String,
    /// Aging bucket names.
    #[serde(default)]
    pub buckets: Vec<String>,
    /// Lowest total outstanding in the base currency (inclusive).
    pub amount_min: Option<Decimal>,
    /// Highest total outstanding in the base currency (exclusive).
    pub amount_max: Option<Decimal>,
    /// Products of the oldest unpaid obligation.
    #[serde(default)]
    pub products: Vec<Sym>,
    /// Zones or branches.
    #[serde(default)]
    pub zones: Vec<Sym>,
    /// Countries (ISO 3166-1 alpha-2).
    #[serde(default)]
    pub countries: Vec<Sym>,
    /// Customer types.
    #[serde(default)]
    pub customer_types: Vec<CustomerType>,
    /// Lowest risk score (inclusive).
    pub risk_min: Option<u16>,
    /// Highest risk score (inclusive).
    pub risk_max: Option<u16>,
    /// Payment-history classes.
    #[serde(default)]
    pub payment_history: Vec<PaymentHistory>,
    /// Preferred channels.
    #[serde(default)]
    pub preferred_channels: Vec<Channel>,
}

#[derive(Clone, Debug)]
struct Compiled {
    segment: u16,
    buckets: u64,
    rule: SegmentRule,
}

/// Compiled segmentation.
#[derive(Clone, Debug)]
pub struct Segmentation {
    names: Vec<String>,
    /// `segment:<name>` for each name, as reclassification records write it.
    labels: Vec<CompactString>,
    default: u16,
    rules: Vec<Compiled>,
}

impl Segmentation {
    /// Validates against the aging buckets and compiles.
    pub fn new(cfg: &SegmentationConfig, aging: &Aging) -> Result<Self, ConfigError> {
        let mut names: Vec<String> = Vec::new();
        let mut intern = |n: &str| -> u16 {
            match names.iter().position(|x| x == n) {
                Some(i) => i as u16,
                None => {
                    names.push(n.to_string());
                    (names.len() - 1) as u16
                }
            }
        };
        if cfg.default_segment.trim().is_empty() {
            return Err(ConfigError::invalid(
                "default_segment",
                "must be a non-empty name",
            ));
        }
        let default = intern(&cfg.default_segment);
        let mut rules = Vec::with_capacity(cfg.rules.len());
        for (i, r) in cfg.rules.iter().enumerate() {
            let field = |f: &str| format!("rules[{i}].{f}");
            if r.segment.trim().is_empty() {
                return Err(ConfigError::invalid(
                    field("segment"),
                    "must be a non-empty name",
                ));
            }
            let mut buckets = 0u64;
            for b in &r.buckets {
                let idx = aging.bucket_index(b).ok_or_else(|| {
                    ConfigError::invalid(
                        field("buckets"),
                        format!(
                            "unknown bucket `{b}` (known: {})",
                            aging.bucket_names().join(", ")
                        ),
                    )
                })?;
                buckets |= 1 << idx;
            }
            if let (Some(lo), Some(hi)) = (r.amount_min, r.amount_max)
                && lo >= hi
            {
                return Err(ConfigError::invalid(
                    field("amount_max"),
                    "must be greater than amount_min",
                ));
            }
            if r.amount_min.is_some_and(|a| a < Decimal::ZERO) {
                return Err(ConfigError::invalid(
                    field("amount_min"),
                    "must not be negative",
                ));
            }
            if let (Some(lo), Some(hi)) = (r.risk_min, r.risk_max)
                && lo > hi
            {
                return Err(ConfigError::invalid(
                    field("risk_max"),
                    "must not be below risk_min",
                ));
            }
            if r.risk_max.is_some_and(|x| x > 1000) || r.risk_min.is_some_and(|x| x > 1000) {
                return Err(ConfigError::invalid(
                    field("risk_max"),
                    "risk scores run 0..=1000",
                ));
            }
            rules.push(Compiled {
                segment: intern(&r.segment),
                buckets,
                rule: r.clone(),
            });
        }
        let labels = names
            .iter()
            .map(|n| compact_str::format_compact!("segment:{n}"))
            .collect();
        Ok(Self {
            names,
            labels,
            default,
            rules,
        })
    }

    /// `segment:<name>` of segment `i`, as reclassification records write it.
    pub fn label(&self, i: u16) -> Option<&CompactString> {
        self.labels.get(usize::from(i))
    }

    /// Segment names; a debtor's `derived.segment` indexes this.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Index of a segment name.
    pub fn index(&self, name: &str) -> Option<u16> {
        self.names.iter().position(|n| n == name).map(|i| i as u16)
    }

    /// The segment of `d`, given its freshly derived bucket and outstanding amount.
    pub fn classify(&self, d: &Debtor) -> u16 {
        let bucket = d.derived.bucket;
        let amount = d.derived.outstanding_base.get();
        let product = d.oldest_unpaid().map(|o| o.product);
        let history = d.history.class();
        let profile = d.profile.as_ref();
        for c in &self.rules {
            let r = &c.rule;
            let ok = (c.buckets == 0 || c.buckets & (1 << bucket) != 0)
                && r.amount_min.is_none_or(|m| amount >= m)
                && r.amount_max.is_none_or(|m| amount < m)
                && (r.products.is_empty() || product.is_some_and(|p| r.products.contains(&p)))
                && (r.payment_history.is_empty() || r.payment_history.contains(&history))
                && match profile {
                    Some(p) => {
                        (r.zones.is_empty() || r.zones.contains(&p.zone))
                            && (r.countries.is_empty() || r.countries.contains(&p.country))
                            && (r.customer_types.is_empty()
                                || r.customer_types.contains(&p.customer_type))
                            && r.risk_min.is_none_or(|m| p.risk_score >= m)
                            && r.risk_max.is_none_or(|m| p.risk_score <= m)
                            && (r.preferred_channels.is_empty()
                                || p.preferred_channel
                                    .is_some_and(|c| r.preferred_channels.contains(&c)))
                    }
                    // Unknown facts match no profile criterion.
                    None => {
                        r.zones.is_empty()
                            && r.countries.is_empty()
                            && r.customer_types.is_empty()
                            && r.risk_min.is_none()
                            && r.risk_max.is_none()
                            && r.preferred_channels.is_empty()
                    }
                };
            if ok {
                return c.segment;
            }
        }
        self.default
    }
}
