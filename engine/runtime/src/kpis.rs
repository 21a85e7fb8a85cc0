//! Collections KPIs over rolling windows: daily counters per partition, by segment and by strategy arm, fed by every
//! decision the worker applies. Counters are summed over a window at query time and merged across partitions; rates
//! are computed from the sums (see [`KpiCounts::rates`]), so they are exact for the whole portfolio.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use mora_domain::action::{Action, AuditRecord, DecisionKind};
use mora_domain::debtor::Debtor;
use mora_domain::engine::Engine;
use mora_domain::event::{EventKind, Outcome};
use mora_domain::ids::Channel;
use mora_domain::time::{DAY_MS, Ts};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Days of counters kept per partition.
pub const RETENTION_DAYS: i64 = 90;

/// A dimension KPIs are broken down by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dim {
    /// The whole partition.
    All,
    /// A segment (index in the segmentation).
    Segment(u16),
    /// A strategy arm (1-based index in the compiled strategies).
    Arm(u16),
}

/// Counters of one day and dimension (or their sum over a window).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KpiCounts {
    /// Debtors moving between aging buckets, `from -> to` by bucket index (`from` 255: a new debtor).
    pub transitions: BTreeMap<(u8, u8), u64>,
    /// Debtors back to no days past due.
    pub cures: u64,
    /// Debtors falling past due.
    pub new_delinquencies: u64,
    /// Promises kept.
    pub promises_kept: u64,
    /// Promises broken.
    pub promises_broken: u64,
    /// Overdue amount paid (base currency).
    pub recovered: Decimal,
    /// Actions sent, per channel.
    pub actions: BTreeMap<Channel, u64>,
    /// Contacts that reached the debtor's device or phone (a message delivered, a call answered), per channel.
    /// Gateways report progress per action (delivered, then read, then replied), so only the first step counts.
    pub contacted: BTreeMap<Channel, u64>,
    /// Right-party contacts, per channel.
    pub right_party: BTreeMap<Channel, u64>,
    /// Populations now (filled at query time): debtors per bucket.
    pub population: BTreeMap<u8, u64>,
    /// Debtors past due now.
    pub delinquent: u64,
    /// Overdue amount now (base currency).
    pub overdue: Decimal,
}

impl KpiCounts {
    /// Adds `o` into `self`.
    pub fn add(&mut self, o: &KpiCounts) {
        for (k, v) in &o.transitions {
            *self.transitions.entry(*k).or_default() += v;
        }
        self.cures += o.cures;
        self.new_delinquencies += o.new_delinquencies;
        self.promises_kept += o.promises_kept;
        self.promises_broken += o.promises_broken;
        self.recovered += o.recovered;
        for (map, other) in [
            (&mut self.actions, &o.actions),
            (&mut self.contacted, &o.contacted),
            (&mut self.right_party, &o.right_party),
        ] {
            for (k, v) in other {
                *map.entry(*k).or_default() += v;
            }
        }
        for (k, v) in &o.population {
            *self.population.entry(*k).or_default() += v;
        }
        self.delinquent += o.delinquent;
        self.overdue += o.overdue;
    }

    /// The rates, with bucket names from `bucket_names`:
    ///
    /// - roll rate `a -> b`: moves from `a` to `b` in the window over the debtors in `a` at some point of it (there
    ///   at its start, i.e. now minus what came in plus what went out, or entering it during the window);
    /// - cure rate: cures over debtors past due at the window's start or falling past due in it;
    /// - promise-kept rate: kept over kept and broken;
    /// - recovery rate: overdue amount paid over that plus the overdue amount now;
    /// - contact and right-party contact rates per channel: messages delivered or calls answered, and conversations
    ///   with the debtor, over actions sent.
    pub fn rates(&self, bucket_names: &[String]) -> KpiRates {
        let name = |b: u8| {
            bucket_names
                .get(b as usize)
                .cloned()
                .unwrap_or_else(|| "(new)".to_string())
        };
        let ratio = |n: f64, d: f64| (d > 0.0).then(|| (n / d * 10_000.0).round() / 10_000.0);
        let mut start: BTreeMap<u8, i64> = self
            .population
            .iter()
            .map(|(b, n)| (*b, *n as i64))
            .collect();
        for ((from, to), n) in &self.transitions {
            *start.entry(*to).or_default() -= *n as i64;
            if *from != NEW {
                *start.entry(*from).or_default() += *n as i64;
            }
        }
        // Debtors that were in a bucket at some point of the window: there at its start, or entering it during it.
        let mut exposure: BTreeMap<u8, i64> = start.clone();
        for ((_, to), n) in &self.transitions {
            *exposure.entry(*to).or_default() += *n as i64;
        }
        let roll_rates = self
            .transitions
            .iter()
            .filter(|((from, to), _)| *from != NEW && from != to)
            .map(|((from, to), n)| {
                let base = exposure.get(from).copied().unwrap_or(0).max(*n as i64);
                (
                    format!("{} -> {}", name(*from), name(*to)),
                    Rate {
                        count: *n,
                        rate: ratio(*n as f64, base as f64),
                    },
                )
            })
            .collect();
        let at_start = (self.delinquent + self.cures).saturating_sub(self.new_delinquencies);
        let per_channel = |num: &BTreeMap<Channel, u64>| {
            self.actions
                .iter()
                .map(|(c, sent)| {
                    let n = num.get(c).copied().unwrap_or(0);
                    (
                        c.as_str().to_string(),
                        Rate {
                            count: n,
                            rate: ratio(n as f64, *sent as f64),
                        },
                    )
                })
                .collect()
        };
        let recovered = f64::try_from(self.recovered).unwrap_or(0.0);
        let overdue = f64::try_from(self.overdue).unwrap_or(0.0);
        KpiRates {
            roll_rates,
            cures: self.cures,
            cure_rate: ratio(
                self.cures as f64,
                (at_start + self.new_delinquencies) as f64,
            ),
            promises_kept: self.promises_kept,
            promises_broken: self.promises_broken,
            promise_kept_rate: ratio(
                self.promises_kept as f64,
                (self.promises_kept + self.promises_broken) as f64,
            ),
            recovered_base: self.recovered.round_dp(2),
            recovery_rate: ratio(recovered, recovered + overdue),
            actions: self
                .actions
                .iter()
                .map(|(c, n)| (c.as_str().to_string(), *n))
                .collect(),
            contact_rate: per_channel(&self.contacted),
            right_party_contact_rate: per_channel(&self.right_party),
            debtors_past_due: self.delinquent,
            overdue_base: self.overdue.round_dp(2),
        }
    }
}

/// A count and its rate (`None` when the denominator is zero).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rate {
    /// Numerator.
    pub count: u64,
    /// Ratio, four decimals.
    pub rate: Option<f64>,
}

/// The KPIs of one dimension over one window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KpiRates {
    /// Roll rates between buckets.
    pub roll_rates: BTreeMap<String, Rate>,
    /// Cures.
    pub cures: u64,
    /// Cure rate.
    pub cure_rate: Option<f64>,
    /// Promises kept.
    pub promises_kept: u64,
    /// Promises broken.
    pub promises_broken: u64,
    /// Promise-kept rate.
    pub promise_kept_rate: Option<f64>,
    /// Overdue amount paid, base currency.
    pub recovered_base: Decimal,
    /// Recovery rate.
    pub recovery_rate: Option<f64>,
    /// Actions per channel.
    pub actions: BTreeMap<String, u64>,
    /// Contact rate per channel.
    pub contact_rate: BTreeMap<String, Rate>,
    /// Right-party contact rate per channel.
    pub right_party_contact_rate: BTreeMap<String, Rate>,
    /// Debtors past due now.
    pub debtors_past_due: u64,
    /// Overdue amount now, base currency.
    pub overdue_base: Decimal,
}

const NEW: u8 = u8::MAX;

/// One partition's daily counters.
#[derive(Clone, Debug, Default)]
pub(crate) struct Kpis {
    /// Days since the epoch and their counters, in day order (counts nearly always go to the last one).
    days: VecDeque<(i64, DayCounts)>,
    /// Days counted into since the last [`Kpis::take_dirty`] (what the next state flush writes).
    dirty: BTreeSet<i64>,
    /// The day last marked in `dirty` (nearly every count goes to the same day as the one before).
    last_dirty: Option<i64>,
}

/// One day's counters, each dimension's at a fixed place (the whole partition first, then segments and arms
/// interleaved: segment `s` at `1 + 2s`, arm `a` at `2 + 2a`), so that a count reaches its counters without a search.
/// Places of dimensions never counted into hold nothing.
#[derive(Clone, Debug, Default)]
struct DayCounts(Vec<Option<Box<KpiCounts>>>);

impl DayCounts {
    fn place(dim: Dim) -> usize {
        match dim {
            Dim::All => 0,
            Dim::Segment(s) => 1 + 2 * usize::from(s),
            Dim::Arm(a) => 2 + 2 * usize::from(a),
        }
    }

    fn dim_at(place: usize) -> Dim {
        match place {
            0 => Dim::All,
            p if p % 2 == 1 => Dim::Segment(((p - 1) / 2) as u16),
            p => Dim::Arm(((p - 2) / 2) as u16),
        }
    }

    /// `dim`'s counters, created empty if it has none yet.
    fn counts(&mut self, dim: Dim) -> &mut KpiCounts {
        let place = Self::place(dim);
        if self.0.len() <= place {
            self.0.resize_with(place + 1, || None);
        }
        self.0[place].get_or_insert_with(Box::default)
    }

    /// The dimensions counted into, in [`Dim`]'s order within each kind (the whole partition, segments, arms
    /// interleaved: callers collect them into ordered maps).
    fn iter(&self) -> impl Iterator<Item = (Dim, &KpiCounts)> {
        self.0
            .iter()
            .enumerate()
            .filter_map(|(place, c)| Some((Self::dim_at(place), c.as_deref()?)))
    }
}

/// One day's counters keyed by dimension label (see [`dim_label`]): the form they are stored and exchanged in, which
/// survives a reload that reorders segments or strategies.
pub type LabelledDay = BTreeMap<String, KpiCounts>;

/// What a decision changed, for the counters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Before {
    /// Segment and arm the debtor was in: moves, cures and recoveries count for the treatment that was working it.
    pub dims: Option<[Dim; 3]>,
    pub bucket: Option<u8>,
    pub past_due: bool,
    pub overdue: Decimal,
}

impl Before {
    pub(crate) fn of(d: Option<&Debtor>) -> Self {
        Self {
            dims: d.map(dims),
            bucket: d.map(|d| d.derived.bucket),
            past_due: d.is_some_and(|d| d.derived.dpd > 0),
            overdue: d.map_or(Decimal::ZERO, |d| d.derived.overdue_base.get()),
        }
    }
}

fn dims(d: &Debtor) -> [Dim; 3] {
    [
        Dim::All,
        Dim::Segment(d.derived.segment),
        Dim::Arm(d.cursor.strategy),
    ]
}

impl Kpis {
    fn day(&mut self, now: Ts) -> &mut DayCounts {
        let day = now.0.div_euclid(DAY_MS);
        if self.days.len() as i64 > RETENTION_DAYS {
            let keep_from = day - RETENTION_DAYS;
            self.days.retain(|(d, _)| *d >= keep_from);
        }
        if self.last_dirty != Some(day) {
            self.dirty.insert(day);
            self.last_dirty = Some(day);
        }
        self.slot(day)
    }

    /// `day`'s counters, created empty in their place if the day has none yet.
    fn slot(&mut self, day: i64) -> &mut DayCounts {
        let place = match self.days.back() {
            Some((last, _)) if *last == day => self.days.len() - 1,
            _ => match self.days.binary_search_by_key(&day, |(d, _)| *d) {
                Ok(place) => place,
                Err(place) => {
                    self.days.insert(place, (day, DayCounts::default()));
                    place
                }
            },
        };
        &mut self.days[place].1
    }

    /// `day`'s counters, if it has any.
    fn get(&self, day: i64) -> Option<&DayCounts> {
        let place = self.days.binary_search_by_key(&day, |(d, _)| *d).ok()?;
        Some(&self.days[place].1)
    }

    /// The days counted into since the last call, with their whole counters, labelled with `engine`'s names.
    pub(crate) fn take_dirty(&mut self, engine: &Engine) -> Vec<(i64, LabelledDay)> {
        self.last_dirty = None;
        std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|day| {
                let dims = self.get(day)?;
                Some((day, label_each(engine, dims.iter())))
            })
            .collect()
    }

    /// Loads stored days (a restore); labels `engine` does not know any more are dropped, and so are days beyond
    /// the retention before `today`. Loading is not a change: nothing is marked for writing back.
    pub(crate) fn load(
        &mut self,
        engine: &Engine,
        today: i64,
        days: impl IntoIterator<Item = (i64, LabelledDay)>,
    ) -> usize {
        let mut dropped = 0;
        for (day, labelled) in days {
            if day < today - RETENTION_DAYS {
                continue;
            }
            let slot = self.slot(day);
            for (label, c) in labelled {
                match dim_of_label(engine, &label) {
                    Some(dim) => slot.counts(dim).add(&c),
                    None => dropped += 1,
                }
            }
        }
        dropped
    }

    fn each(&mut self, now: Ts, d: &Debtor, f: impl Fn(&mut KpiCounts)) {
        self.each_in(now, dims(d), f);
    }

    fn each_in(&mut self, now: Ts, dims: [Dim; 3], f: impl Fn(&mut KpiCounts)) {
        let day = self.day(now);
        for dim in dims {
            f(day.counts(dim));
        }
    }

    /// Counts what one evaluation of `d` changed (`event`: the event applied, if any).
    pub(crate) fn evaluated(
        &mut self,
        now: Ts,
        before: Before,
        d: &Debtor,
        event: Option<&EventKind>,
    ) {
        let after_bucket = d.derived.bucket;
        let was = before.dims.unwrap_or_else(|| dims(d));
        if before.bucket != Some(after_bucket) {
            let from = before.bucket.unwrap_or(NEW);
            self.each_in(now, was, |c| {
                *c.transitions.entry((from, after_bucket)).or_default() += 1
            });
        }
        let past_due = d.derived.dpd > 0;
        if before.past_due && !past_due {
            self.each_in(now, was, |c| c.cures += 1);
        } else if !before.past_due && past_due {
            self.each(now, d, |c| c.new_delinquencies += 1);
        }
        match event {
            Some(EventKind::PaymentReceived { .. } | EventKind::CreditNote { .. }) => {
                let paid = before.overdue - d.derived.overdue_base.get();
                if paid > Decimal::ZERO {
                    self.each_in(now, was, |c| c.recovered += paid);
                }
            }
            Some(EventKind::ContactOutcome {
                channel, outcome, ..
            }) => {
                let reached = matches!(outcome, Outcome::Delivered | Outcome::Answered);
                let rpc = *outcome == Outcome::RightPartyContact;
                self.each(now, d, |c| {
                    if reached {
                        *c.contacted.entry(*channel).or_default() += 1;
                    }
                    if rpc {
                        *c.right_party.entry(*channel).or_default() += 1;
                    }
                });
            }
            _ => {}
        }
    }

    /// Counts an action sent for `d`.
    pub(crate) fn action(&mut self, now: Ts, d: &Debtor, a: &Action) {
        self.each(now, d, |c| *c.actions.entry(a.channel).or_default() += 1);
    }

    /// Counts a promise kept or broken.
    pub(crate) fn audit(&mut self, now: Ts, d: &Debtor, r: &AuditRecord) {
        match r.kind {
            DecisionKind::PromiseKept => self.each(now, d, |c| c.promises_kept += 1),
            DecisionKind::PromiseBroken => self.each(now, d, |c| c.promises_broken += 1),
            _ => {}
        }
    }

    /// The counters of the `days` days up to `now`, per dimension, with the populations of `debtors` now.
    pub(crate) fn window<'a>(
        &self,
        now: Ts,
        days: i64,
        debtors: impl Iterator<Item = &'a Debtor>,
    ) -> BTreeMap<Dim, KpiCounts> {
        let today = now.0.div_euclid(DAY_MS);
        let mut out = populations(debtors);
        let window = today - days + 1..=today;
        for (_, per_dim) in self.days.iter().filter(|(d, _)| window.contains(d)) {
            for (dim, c) in per_dim.iter() {
                out.entry(dim).or_default().add(c);
            }
        }
        out
    }
}

/// Populations now per dimension (debtors per bucket, past due, overdue amount): the part of a window's counters
/// that is a picture of the present rather than a count of moves.
pub(crate) fn populations<'a>(
    debtors: impl Iterator<Item = &'a Debtor>,
) -> BTreeMap<Dim, KpiCounts> {
    let mut out: BTreeMap<Dim, KpiCounts> = BTreeMap::new();
    for d in debtors {
        count_population(&mut out, d);
    }
    out
}

/// Counts `d` into the populations `out`.
pub(crate) fn count_population(out: &mut BTreeMap<Dim, KpiCounts>, d: &Debtor) {
    for dim in dims(d) {
        let c = out.entry(dim).or_default();
        *c.population.entry(d.derived.bucket).or_default() += 1;
        if d.derived.dpd > 0 {
            c.delinquent += 1;
            c.overdue += d.derived.overdue_base.get();
        }
    }
}

/// Counters keyed by dimension label.
pub fn label_dims(engine: &Engine, dims: &BTreeMap<Dim, KpiCounts>) -> LabelledDay {
    label_each(engine, dims.iter().map(|(dim, c)| (*dim, c)))
}

fn label_each<'a>(
    engine: &Engine,
    dims: impl Iterator<Item = (Dim, &'a KpiCounts)>,
) -> LabelledDay {
    let mut out = LabelledDay::new();
    for (dim, c) in dims {
        out.entry(dim_label(engine, dim)).or_default().add(c);
    }
    out
}

/// Sums labelled daily counters over the `days` days up to `today` (days since the epoch).
pub fn window_of_days<'a>(
    stored: impl IntoIterator<Item = (&'a i64, &'a LabelledDay)>,
    today: i64,
    days: i64,
) -> LabelledDay {
    let mut out = LabelledDay::new();
    for (day, labelled) in stored {
        if (today - days + 1..=today).contains(day) {
            for (label, c) in labelled {
                out.entry(label.clone()).or_default().add(c);
            }
        }
    }
    out
}

/// The dimension a label names in `engine`, if it still exists there.
pub fn dim_of_label(engine: &Engine, label: &str) -> Option<Dim> {
    if label == "all" {
        return Some(Dim::All);
    }
    if let Some(name) = label.strip_prefix("segment:") {
        let i = engine.segmentation.names().iter().position(|n| n == name)?;
        return u16::try_from(i).ok().map(Dim::Segment);
    }
    let arm = label.strip_prefix("arm:")?;
    if arm == "(none)" {
        return Some(Dim::Arm(0));
    }
    (1..=u16::MAX)
        .map_while(|i| engine.strategies.get(i).map(|s| (i, s)))
        .find(|(_, s)| format!("{}/{}", s.id, s.arm) == arm)
        .map(|(i, _)| Dim::Arm(i))
}

/// A dimension's label for reports: `all`, `segment:<name>` or `arm:<strategy>/<arm>`.
pub fn dim_label(engine: &Engine, dim: Dim) -> String {
    match dim {
        Dim::All => "all".to_string(),
        Dim::Segment(s) => format!(
            "segment:{}",
            engine
                .segmentation
                .names()
                .get(s as usize)
                .map_or("?", String::as_str)
        ),
        Dim::Arm(i) => match engine.strategies.get(i) {
            Some(s) => format!("arm:{}/{}", s.id, s.arm),
            None => "arm:(none)".to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mora_domain::testkit;

    #[test]
    fn each_dimension_has_its_own_place_and_only_those_counted_into_are_listed() {
        let dims = [
            Dim::All,
            Dim::Segment(0),
            Dim::Segment(1),
            Dim::Segment(7),
            Dim::Segment(u16::MAX),
            Dim::Arm(0),
            Dim::Arm(1),
            Dim::Arm(7),
            Dim::Arm(u16::MAX),
        ];
        let places: BTreeSet<usize> = dims.iter().map(|d| DayCounts::place(*d)).collect();
        assert_eq!(places.len(), dims.len(), "no two dimensions share a place");
        for dim in dims {
            assert_eq!(DayCounts::dim_at(DayCounts::place(dim)), dim);
        }
        let mut day = DayCounts::default();
        for (n, dim) in [Dim::Arm(2), Dim::Segment(3), Dim::All, Dim::Arm(2)]
            .into_iter()
            .enumerate()
        {
            day.counts(dim).cures += n as u64 + 1;
        }
        let listed: BTreeMap<Dim, u64> = day.iter().map(|(d, c)| (d, c.cures)).collect();
        assert_eq!(
            listed,
            BTreeMap::from([(Dim::All, 3), (Dim::Segment(3), 2), (Dim::Arm(2), 5)])
        );
    }

    #[test]
    fn days_loaded_out_of_order_are_kept_in_day_order_and_windowed_by_day() {
        let engine = testkit::engine();
        let labelled = |cures: u64| {
            LabelledDay::from([(
                "all".to_string(),
                KpiCounts {
                    cures,
                    ..KpiCounts::default()
                },
            )])
        };
        let mut k = Kpis::default();
        let loaded = [(20_005, 5), (20_001, 1), (20_003, 3), (19_000, 100)];
        k.load(&engine, 20_005, loaded.map(|(d, n)| (d, labelled(n))));
        let days: Vec<i64> = k.days.iter().map(|(d, _)| *d).collect();
        assert_eq!(
            days,
            [20_001, 20_003, 20_005],
            "in order, the day past retention dropped"
        );
        let d = Debtor::new("D-1".into());
        k.each(Ts(20_002 * DAY_MS), &d, |c| c.cures += 10);
        let window = |k: &Kpis, today: i64, days: i64| {
            k.window(Ts(today * DAY_MS), days, std::iter::empty())[&Dim::All].cures
        };
        assert_eq!(window(&k, 20_005, 3), 8);
        assert_eq!(window(&k, 20_003, 2), 13);
        assert_eq!(window(&k, 20_005, 90), 19);
    }

    #[test]
    fn every_day_counted_into_since_the_last_take_is_taken_once() {
        let engine = testkit::engine();
        let d = Debtor::new("D-1".into());
        let day = |n: i64| Ts(n * DAY_MS + 3_600_000);
        let taken = |k: &mut Kpis| {
            k.take_dirty(&engine)
                .into_iter()
                .map(|(d, _)| d)
                .collect::<Vec<_>>()
        };
        let mut k = Kpis::default();
        k.each(day(20_000), &d, |c| c.cures += 1);
        k.each(day(20_000), &d, |c| c.cures += 1);
        assert_eq!(taken(&mut k), [20_000]);
        assert_eq!(taken(&mut k), Vec::<i64>::new());
        // The same day again after a take is dirty again.
        k.each(day(20_000), &d, |c| c.cures += 1);
        assert_eq!(taken(&mut k), [20_000]);
        k.each(day(20_001), &d, |c| c.cures += 1);
        k.each(day(20_000), &d, |c| c.cures += 1);
        assert_eq!(taken(&mut k), [20_000, 20_001]);
        let cures = |k: &Kpis, day: i64| {
            let counts = k.get(day).map(|d| d.iter().collect::<BTreeMap<_, _>>());
            counts.and_then(|c| Some(c.get(&Dim::All)?.cures))
        };
        assert_eq!(cures(&k, 20_000), Some(4));
        assert_eq!(cures(&k, 20_001), Some(1));
    }
}
