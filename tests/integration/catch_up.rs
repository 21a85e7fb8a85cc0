//! Catching up after a block, from the rules (domain.md, compliance-rules.md) and the shipped policy files of the
//! US, Chile and Colombia: steps that fell due while contact was blocked (a quiet period after a conversation, a
//! frequency cap, holidays) are not released together when contact opens. By default only the latest per channel is
//! sent and the others are dropped as `superseded`; a strategy with `catch_up = "spaced"` sends them one by one, at
//! least the channel's minimum gap apart. No server needed.

use std::path::Path;

use mora_domain::action::{Action, DecisionKind};
use mora_domain::engine::{Engine, EngineConfig};
use mora_domain::event::{EventKind, Outcome};
use mora_domain::ids::Channel;
use mora_domain::policy::{HolidayCalendarConfig, PolicyConfig};
use mora_domain::strategy::{CatchUp, StepConfig, StrategyConfig};
use mora_domain::testkit::{self, Harness, ts};
use mora_domain::time::Ts;

pub(crate) fn defaults() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../app/defaults")
}

pub(crate) fn read_dir<T: serde::de::DeserializeOwned>(dir: &str) -> Vec<T> {
    let mut files: Vec<_> = std::fs::read_dir(defaults().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| toml::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

/// The shipped decisions, policies and calendars, with a strategy in front that calls every day at 09:00 local for
/// two weeks after the due date.
fn engine(catch_up: CatchUp) -> Engine {
    let mut cfg: EngineConfig =
        toml::from_str(&std::fs::read_to_string(defaults().join("decisions.toml")).unwrap())
            .unwrap();
    let steps = (1..=14)
        .map(|day| StepConfig {
            id: format!("call-d{day}"),
            channel: Channel::Dialer,
            template: "collector_call".into(),
            day,
            from: Default::default(),
            at: "09:00".into(),
        })
        .collect();
    cfg.strategies.insert(
        0,
        StrategyConfig {
            id: "daily-calls".into(),
            segments: vec![],
            stages: vec![],
            steps,
            on_broken_promise: None,
            on_paid_in_full: None,
            arms: vec![],
            catch_up,
        },
    );
    let policies: Vec<PolicyConfig> = read_dir("policies");
    let calendars: Vec<HolidayCalendarConfig> = read_dir("holidays");
    Engine::new(&cfg, &policies, &calendars).unwrap()
}

/// A debtor of `country` owing from `due`, onboarded at `start`.
fn debtor(
    catch_up: CatchUp,
    country: &str,
    tz: &str,
    currency: &str,
    due: &str,
    start: &str,
) -> Harness {
    let at = ts(start);
    let mut h = Harness::new(engine(catch_up), "D-1", at);
    h.feed(&testkit::debtor_upserted("D-1", country, tz, at))
        .unwrap();
    h.feed(&testkit::obligation(
        "D-1",
        "L1",
        currency,
        "900000",
        due,
        at.plus_ms(1000),
    ))
    .unwrap();
    h
}

fn calls(h: &Harness) -> Vec<&Action> {
    h.out
        .actions
        .iter()
        .filter(|a| a.channel == Channel::Dialer)
        .collect()
}

fn superseded(h: &Harness) -> usize {
    h.out
        .audits
        .iter()
        .filter(|a| a.kind == DecisionKind::Dropped && a.reason == "superseded")
        .count()
}

/// Most calls within any `hours` span.
fn most_within(calls: &[&Action], hours: i64) -> usize {
    calls
        .iter()
        .map(|a| {
            calls
                .iter()
                .filter(|b| {
                    b.not_before >= a.not_before
                        && b.not_before.0 < a.not_before.0 + hours * 3_600_000
                })
                .count()
        })
        .max()
        .unwrap_or(0)
}

fn conversation(h: &mut Harness, about: &Action, at: Ts) {
    let ev = testkit::event(
        "D-1",
        &format!("outcome-{}", at.0),
        at,
        EventKind::ContactOutcome {
            action_id: about.action_id.0.clone(),
            channel: Channel::Dialer,
            outcome: Outcome::RightPartyContact,
        },
    );
    h.feed(&ev).unwrap();
}

#[test]
fn us_after_the_quiet_period_one_call_goes_out_not_seven() {
    // Reg. F: no call for 7 days after a conversation; a daily-call strategy keeps wanting to call meanwhile.
    let mut h = debtor(
        CatchUp::Latest,
        "US",
        "America/New_York",
        "USD",
        "2026-03-02",
        "2026-03-02T14:00:00Z",
    );
    h.advance_to(ts("2026-03-03T14:30:00Z")); // day 1's call, 09:00 EST
    let first = calls(&h)[0].clone();
    conversation(&mut h, &first, ts("2026-03-03T15:00:00Z"));
    h.advance_to(ts("2026-03-11T04:00:00Z"));
    let after: Vec<&Action> = calls(&h).into_iter().skip(1).collect();
    assert_eq!(
        after.len(),
        1,
        "one call when the quiet period ends: {after:?}"
    );
    assert_eq!(
        after[0].not_before,
        ts("2026-03-10T15:00:00Z"),
        "at its end, 7 days after the conversation"
    );
    assert_eq!(
        after[0].reason.step, "call-d8",
        "the latest step that fell due"
    );
    assert_eq!(
        superseded(&h),
        6,
        "days 2 to 7 were superseded, each audited"
    );
    // The strategy goes on normally: day 9's call the next morning.
    h.advance_to(ts("2026-03-11T14:00:00Z"));
    assert_eq!(calls(&h).last().unwrap().reason.step, "call-d9");
}

#[test]
fn us_spaced_catch_up_sends_every_call_at_least_the_default_gap_apart() {
    let mut h = debtor(
        CatchUp::Spaced,
        "US",
        "America/New_York",
        "USD",
        "2026-03-02",
        "2026-03-02T14:00:00Z",
    );
    h.advance_to(ts("2026-03-03T14:30:00Z"));
    let first = calls(&h)[0].clone();
    conversation(&mut h, &first, ts("2026-03-03T15:00:00Z"));
    h.advance_to(ts("2026-03-14T04:00:00Z"));
    let all = calls(&h);
    assert_eq!(superseded(&h), 0);
    for pair in all.windows(2) {
        let gap = pair[1].not_before.0 - pair[0].not_before.0;
        assert!(
            gap >= 4 * 3_600_000,
            "calls {} and {} only {gap} ms apart",
            pair[0].reason.step,
            pair[1].reason.step
        );
    }
    let steps: Vec<&str> = all.iter().map(|a| a.reason.step.as_str()).collect();
    for day in 2..=8 {
        assert!(
            steps.contains(&format!("call-d{day}").as_str()),
            "day {day} was sent, later: {steps:?}"
        );
    }
    // Reg. F's cap still holds: at most 7 calls in any 7 days.
    assert!(most_within(&all, 7 * 24) <= 7, "{steps:?}");
}

#[test]
fn chile_after_the_weekly_call_cap_one_call_goes_out() {
    // Ley 21.320: more than one call a week breaches the law; the cap defers each daily call to a week after the
    // last one, where they would all meet.
    let mut h = debtor(
        CatchUp::Latest,
        "CL",
        "America/Santiago",
        "CLP",
        "2026-03-02",
        "2026-03-02T13:00:00Z",
    );
    h.advance_to(ts("2026-03-20T00:00:00Z"));
    let all = calls(&h);
    assert!(all.len() >= 2, "{all:?}");
    assert!(
        most_within(&all, 7 * 24) <= 1,
        "one call a week: {:?}",
        all.iter().map(|a| a.not_before).collect::<Vec<_>>()
    );
    assert!(
        superseded(&h) >= 5,
        "the week's other calls were superseded: {}",
        superseded(&h)
    );
}

#[test]
fn colombia_after_two_holidays_one_call_goes_out_when_contact_opens() {
    // Ley 2300: no contact on festivos; Holy Thursday and Good Friday 2026 (2 and 3 April). Both days' calls wait
    // for Saturday 08:00, where only the latest goes out.
    let mut h = debtor(
        CatchUp::Latest,
        "CO",
        "America/Bogota",
        "COP",
        "2026-03-31",
        "2026-03-31T14:00:00Z",
    );
    h.advance_to(ts("2026-04-04T20:00:00Z"));
    let saturday: Vec<&Action> = calls(&h)
        .into_iter()
        .filter(|a| a.not_before >= ts("2026-04-04T13:00:00Z"))
        .collect();
    assert_eq!(saturday.len(), 1, "{saturday:?}");
    assert_eq!(
        saturday[0].not_before,
        ts("2026-04-04T13:00:00Z"),
        "Saturday 08:00 in Bogotá"
    );
    assert_eq!(
        saturday[0].reason.step, "call-d3",
        "Good Friday's step, the latest due"
    );
    assert!(superseded(&h) >= 1, "Thursday's call was superseded");
    assert!(
        calls(&h).iter().all(|a| {
            let day = a.not_before.0.div_euclid(86_400_000);
            day != ts("2026-04-02T12:00:00Z").0.div_euclid(86_400_000)
                && day != ts("2026-04-03T12:00:00Z").0.div_euclid(86_400_000)
        }),
        "no call on the festivos"
    );
}

#[test]
fn a_queued_call_is_checked_again_when_released() {
    // Deferred past the quiet period, the call meets a debtor who has since been placed with an agency: what would
    // stop a new call stops the queued one, audited with the reason.
    let mut h = debtor(
        CatchUp::Latest,
        "US",
        "America/New_York",
        "USD",
        "2026-03-02",
        "2026-03-02T14:00:00Z",
    );
    h.advance_to(ts("2026-03-03T14:30:00Z"));
    let first = calls(&h)[0].clone();
    conversation(&mut h, &first, ts("2026-03-03T15:00:00Z"));
    h.advance_to(ts("2026-03-05T15:00:00Z"));
    let placed = testkit::event(
        "D-1",
        "agency-1",
        ts("2026-03-06T15:00:00Z"),
        EventKind::AgencyPlaced {
            agency_id: "Cobros SA".into(),
        },
    );
    h.feed(&placed).unwrap();
    h.advance_to(ts("2026-03-12T04:00:00Z"));
    assert_eq!(calls(&h).len(), 1, "no call after the placement");
    let cancelled: Vec<&str> = h
        .out
        .audits
        .iter()
        .filter(|a| a.kind == DecisionKind::Cancelled && a.rule == "engine/release")
        .map(|a| a.reason.as_str())
        .collect();
    assert!(cancelled.contains(&"agency_placed"), "{cancelled:?}");
}

#[test]
fn the_default_gap_keeps_two_steps_on_one_channel_apart() {
    // Two call steps an hour apart, in a policy without a gap rule for calls (Colombia has a daily cap; the US none
    // below seven a week): the engine's default gap of four hours applies.
    let mut cfg: EngineConfig =
        toml::from_str(&std::fs::read_to_string(defaults().join("decisions.toml")).unwrap())
            .unwrap();
    let step = |id: &str, at: &str| StepConfig {
        id: id.into(),
        channel: Channel::Dialer,
        template: "collector_call".into(),
        day: 1,
        from: Default::default(),
        at: at.into(),
    };
    cfg.strategies.insert(
        0,
        StrategyConfig {
            id: "two-calls".into(),
            segments: vec![],
            stages: vec![],
            steps: vec![step("early", "09:00"), step("late", "10:00")],
            on_broken_promise: None,
            on_paid_in_full: None,
            arms: vec![],
            catch_up: CatchUp::Latest,
        },
    );
    let engine = Engine::new(
        &cfg,
        &read_dir::<PolicyConfig>("policies"),
        &read_dir("holidays"),
    )
    .unwrap();
    let at = ts("2026-03-02T14:00:00Z");
    let mut h = Harness::new(engine, "D-1", at);
    h.feed(&testkit::debtor_upserted(
        "D-1",
        "US",
        "America/New_York",
        at,
    ))
    .unwrap();
    h.feed(&testkit::obligation(
        "D-1",
        "L1",
        "USD",
        "900",
        "2026-03-02",
        at.plus_ms(1000),
    ))
    .unwrap();
    h.advance_to(ts("2026-03-04T04:00:00Z"));
    let all = calls(&h);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(
        all[1].not_before.0 - all[0].not_before.0,
        4 * 3_600_000,
        "four hours apart, not one"
    );
}

#[test]
fn a_default_gap_out_of_bounds_is_refused_naming_the_field() {
    let text = std::fs::read_to_string(defaults().join("decisions.toml")).unwrap();
    for (gaps, field) in [
        (
            r#"[{ channels = ["dialer"], gap = "0s" }]"#,
            "contact.default_min_gaps[0].gap",
        ),
        (
            r#"[{ channels = ["dialer"], gap = "30d" }]"#,
            "contact.default_min_gaps[0].gap",
        ),
        (
            r#"[{ channels = [], gap = "4h" }]"#,
            "contact.default_min_gaps[0].channels",
        ),
    ] {
        let changed = text.replace(
            r#"default_min_gaps = [{ channels = ["dialer", "sms", "whatsapp", "email"], gap = "4h" }]"#,
            &format!("default_min_gaps = {gaps}"),
        );
        assert_ne!(changed, text, "the shipped file names the default gaps");
        let cfg: EngineConfig = toml::from_str(&changed).unwrap();
        let err = Engine::new(
            &cfg,
            &read_dir::<PolicyConfig>("policies"),
            &read_dir("holidays"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(field), "{gaps}: {err}");
    }
}
