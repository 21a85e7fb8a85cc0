//! mora's own histograms, read from the Prometheus recorder `mora run` installs (the harness runs mora in this
//! process and installs the same one): a step's share is the difference of the bucket counts at its start and end.

use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;

/// Cumulative bucket counts of one histogram, summed over its label sets: `(upper bound in seconds, count)` by
/// increasing bound, `+Inf` last.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Buckets(Vec<(f64, u64)>);

/// Reads histograms from the process's recorder (none if another recorder was installed first).
pub(super) struct EngineMetrics(Option<PrometheusHandle>);

impl EngineMetrics {
    pub(super) fn install() -> Self {
        Self(mora::telemetry::prometheus())
    }

    /// The buckets of histogram `name` now.
    pub(super) fn buckets(&self, name: &str) -> Buckets {
        self.0
            .as_ref()
            .map(|h| Buckets::parse(&h.render(), name))
            .unwrap_or_default()
    }
}

impl Buckets {
    /// Sums `name`'s `_bucket` lines of a Prometheus text exposition by their `le` bound.
    fn parse(text: &str, name: &str) -> Self {
        let prefix = format!("{name}_bucket{{");
        let mut by_bound: Vec<(f64, u64)> = Vec::new();
        for line in text.lines().filter(|l| l.starts_with(&prefix)) {
            let Some((labels, count)) = line[prefix.len()..].split_once("} ") else {
                continue;
            };
            let Some(le) = labels
                .split(',')
                .find_map(|l| l.strip_prefix("le=\""))
                .and_then(|v| v.strip_suffix('"'))
            else {
                continue;
            };
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                match le.parse() {
                    Ok(b) => b,
                    Err(_) => continue,
                }
            };
            let Ok(count) = count.trim().parse::<f64>() else {
                continue;
            };
            match by_bound.iter_mut().find(|(b, _)| *b == bound) {
                Some((_, c)) => *c += count as u64,
                None => by_bound.push((bound, count as u64)),
            }
        }
        by_bound.sort_by(|a, b| a.0.total_cmp(&b.0));
        Self(by_bound)
    }

    /// What was recorded after `before` (same histogram, read earlier).
    pub(super) fn since(&self, before: &Buckets) -> Buckets {
        Buckets(
            self.0
                .iter()
                .map(|(b, c)| {
                    let earlier = before
                        .0
                        .iter()
                        .find(|(eb, _)| eb == b)
                        .map_or(0, |(_, ec)| *ec);
                    (*b, c.saturating_sub(earlier))
                })
                .collect(),
        )
    }

    /// Quantiles as the bucket bounds that hold them.
    pub(super) fn quantiles(&self) -> BucketQuantiles {
        let count = self.0.last().map_or(0, |(_, c)| *c);
        let at = |q: f64| -> Option<f64> {
            let rank = (q * count as f64).ceil().max(1.0) as u64;
            self.0
                .iter()
                .find(|(_, c)| *c >= rank)
                .map(|(b, _)| *b)
                .filter(|b| b.is_finite())
                .map(|b| b * 1000.0)
        };
        BucketQuantiles {
            count,
            p50_at_most_ms: at(0.5),
            p99_at_most_ms: at(0.99),
        }
    }
}

/// A histogram's quantiles to its bucket's resolution: each is at most the figure given (`None`: beyond the last
/// bucket, or nothing recorded).
#[derive(Debug, Default, Serialize)]
pub struct BucketQuantiles {
    pub count: u64,
    pub p50_at_most_ms: Option<f64>,
    pub p99_at_most_ms: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE mora_processing_seconds histogram
mora_processing_seconds_bucket{partition=\"0\",le=\"0.01\"} 90
mora_processing_seconds_bucket{partition=\"0\",le=\"0.1\"} 99
mora_processing_seconds_bucket{partition=\"0\",le=\"+Inf\"} 100
mora_processing_seconds_bucket{partition=\"1\",le=\"0.01\"} 0
mora_processing_seconds_bucket{partition=\"1\",le=\"0.1\"} 0
mora_processing_seconds_bucket{partition=\"1\",le=\"+Inf\"} 100
mora_processing_seconds_sum{partition=\"0\"} 3.5
mora_other_seconds_bucket{le=\"0.01\"} 7
";

    #[test]
    fn buckets_sum_over_labels_and_quantiles_name_the_bound_that_holds_them() {
        let b = Buckets::parse(TEXT, "mora_processing_seconds");
        assert_eq!(
            b,
            Buckets(vec![(0.01, 90), (0.1, 99), (f64::INFINITY, 200)])
        );
        let q = b.quantiles();
        assert_eq!(q.count, 200);
        assert_eq!(q.p50_at_most_ms, None); // half the records are past the last finite bound
        let since = b.since(&Buckets(vec![(0.01, 0), (0.1, 0), (f64::INFINITY, 100)]));
        let q = since.quantiles();
        assert_eq!(
            (q.count, q.p50_at_most_ms, q.p99_at_most_ms),
            (100, Some(10.0), Some(100.0))
        );
    }
}
