//! Work queues: debtors ordered by priority, kept up to date one debtor at a time.

use std::cmp::Reverse;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::config_error::ConfigError;
use crate::debtor::Debtor;
use crate::ids::DebtorId;
use crate::segment::Segmentation;
use crate::stage::Stage;

/// A work queue (a collector team, a dialer campaign...).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Queue name (the query API and summaries use it).
    pub name: String,
    /// Stages whose debtors enter the queue; empty: any.
    #[serde(default)]
    pub stages: Vec<Stage>,
    /// Segments whose debtors enter the queue; empty: any.
    #[serde(default)]
    pub segments: Vec<String>,
    /// Lowest days past due to enter.
    #[serde(default)]
    pub min_dpd: u16,
}

#[derive(Clone, Debug)]
struct Compiled {
    stages: u8,
    segments: Vec<u16>,
    min_dpd: u16,
}

/// Compiled queue definitions.
#[derive(Clone, Debug)]
pub struct QueueDefs {
    names: Vec<String>,
    defs: Vec<Compiled>,
}

impl QueueDefs {
    /// Validates against the segments and compiles (at most 32 queues).
    pub fn new(cfg: &[QueueConfig], seg: &Segmentation) -> Result<Self, ConfigError> {
        if cfg.len() > 32 {
            return Err(ConfigError::invalid("queues", "at most 32 queues"));
        }
        let mut defs = Vec::with_capacity(cfg.len());
        for (i, q) in cfg.iter().enumerate() {
            if q.name.is_empty() || cfg[..i].iter().any(|x| x.name == q.name) {
                return Err(ConfigError::invalid(
                    format!("queues[{i}].name"),
                    "must be non-empty and unique",
                ));
            }
            let mut segments = Vec::new();
            for s in &q.segments {
                segments.push(seg.index(s).ok_or_else(|| {
                    ConfigError::invalid(
                        format!("queues[{i}].segments"),
                        format!("unknown segment `{s}`"),
                    )
                })?);
            }
            let stages = q.stages.iter().fold(0u8, |m, s| m | (1 << *s as u8));
            defs.push(Compiled {
                stages,
                segments,
                min_dpd: q.min_dpd,
            });
        }
        Ok(Self {
            names: cfg.iter().map(|q| q.name.clone()).collect(),
            defs,
        })
    }

    /// Queue names in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Index of a queue.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// The smallest `min_dpd` of a queue above `dpd`: the DPD at which a debtor may enter another queue (it is
    /// woken then, so membership never waits for its next event).
    pub fn next_threshold(&self, dpd: u16) -> Option<u16> {
        self.defs
            .iter()
            .map(|q| q.min_dpd)
            .filter(|&m| m > dpd)
            .min()
    }

    /// Bit mask of the queues `d` belongs in: only debtors who owe money and are not on hold.
    pub fn membership(&self, d: &Debtor) -> u32 {
        if !d.owes() || !d.cold().disputes.is_empty() || d.status().agency.is_some() {
            return 0;
        }
        let dv = &d.derived;
        self.defs.iter().enumerate().fold(0u32, |m, (i, q)| {
            let ok = (q.stages == 0 || q.stages & (1 << dv.stage as u8) != 0)
                && (q.segments.is_empty() || q.segments.contains(&dv.segment))
                && dv.dpd >= q.min_dpd;
            if ok { m | (1 << i) } else { m }
        })
    }
}

/// The ordered queues of one partition, keyed by `K` (a debtor id, or a runtime's slot index).
#[derive(Clone, Debug)]
pub struct QueueBook<K = DebtorId> {
    queues: Vec<BTreeSet<(Reverse<i64>, K)>>,
}

impl<K: Ord + Clone> QueueBook<K> {
    /// Empty queues for `defs`.
    pub fn new(defs: &QueueDefs) -> Self {
        Self {
            queues: vec![BTreeSet::new(); defs.names.len()],
        }
    }

    /// Queues for `defs` filled at once with `entries` (membership, rank, key): each queue's entries sorted and
    /// built bottom-up, far cheaper than inserting them one by one (a reload rebuilds every queue).
    pub fn rebuild(defs: &QueueDefs, entries: impl IntoIterator<Item = (u32, i64, K)>) -> Self {
        let mut lists: Vec<Vec<(Reverse<i64>, K)>> = vec![Vec::new(); defs.names.len()];
        for (membership, rank, key) in entries {
            for (i, list) in lists.iter_mut().enumerate() {
                if membership & (1 << i) != 0 {
                    list.push((Reverse(rank), key.clone()));
                }
            }
        }
        Self {
            queues: lists
                .into_iter()
                .map(|mut list| {
                    list.sort_unstable();
                    list.into_iter().collect()
                })
                .collect(),
        }
    }

    /// Moves `id` from its old membership and priority to the new ones: O(log n) per queue touched.
    pub fn update(&mut self, id: &K, old: (u32, i64), new: (u32, i64)) {
        if old == new {
            return;
        }
        for (i, q) in self.queues.iter_mut().enumerate() {
            let bit = 1u32 << i;
            if old.0 & bit != 0 {
                q.remove(&(Reverse(old.1), id.clone()));
            }
            if new.0 & bit != 0 {
                q.insert((Reverse(new.1), id.clone()));
            }
        }
    }

    /// Number of debtors in queue `i`.
    pub fn len(&self, i: usize) -> usize {
        self.queues.get(i).map_or(0, BTreeSet::len)
    }

    /// Whether every queue is empty.
    pub fn is_empty(&self) -> bool {
        self.queues.iter().all(BTreeSet::is_empty)
    }

    /// Queue `i` in priority order (ties by debtor id), starting after `after` when given.
    pub fn iter_from<'a>(
        &'a self,
        i: usize,
        after: Option<&(i64, K)>,
    ) -> Box<dyn Iterator<Item = (i64, &'a K)> + 'a> {
        let Some(q) = self.queues.get(i) else {
            return Box::new(std::iter::empty());
        };
        let iter = q.iter().map(|(Reverse(p), id)| (*p, id));
        match after {
            None => Box::new(iter),
            Some((p, id)) => {
                let key = (Reverse(*p), id.clone());
                Box::new(
                    q.range((std::ops::Bound::Excluded(key), std::ops::Bound::Unbounded))
                        .map(|(Reverse(p), id)| (*p, id)),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_move_debtors_incrementally() {
        let mut book = QueueBook {
            queues: vec![BTreeSet::new(), BTreeSet::new()],
        };
        let a = DebtorId::from("a");
        let b = DebtorId::from("b");
        book.update(&a, (0, 0), (0b01, 500));
        book.update(&b, (0, 0), (0b11, 700));
        let top: Vec<_> = book
            .iter_from(0, None)
            .map(|(p, id)| (p, id.to_string()))
            .collect();
        assert_eq!(top, vec![(700, "b".into()), (500, "a".into())]);
        book.update(&a, (0b01, 500), (0b01, 900));
        assert_eq!(book.iter_from(0, None).next().unwrap().1, &a);
        let rebuilt = QueueBook::rebuild(
            &QueueDefs {
                names: vec!["x".into(), "y".into()],
                defs: Vec::new(),
            },
            [(0b01, 900, a.clone()), (0b11, 700, b.clone())],
        );
        assert_eq!(
            format!("{:?}", rebuilt.queues),
            format!("{:?}", book.queues),
            "built at once as by updates"
        );
        book.update(&b, (0b11, 700), (0, 0));
        assert_eq!((book.len(0), book.len(1)), (1, 0));
        let after: Vec<_> = book.iter_from(0, Some(&(900, a.clone()))).collect();
        assert!(after.is_empty());
    }
}
