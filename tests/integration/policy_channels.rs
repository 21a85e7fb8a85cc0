//! Which channels a policy's windows and blocked days bind is part of the policy file: `window_channels` for the
//! hours, `blocked_day_channels` for blocked days and holidays (default: the window channels, as before). Tried on
//! Colombia's shipped policy with a letter step that falls on a festivo. No server needed.

use mora_domain::action::Action;
use mora_domain::engine::{Engine, EngineConfig};
use mora_domain::ids::Channel;
use mora_domain::policy::PolicyConfig;
use mora_domain::strategy::{StepConfig, StrategyConfig};
use mora_domain::testkit::{self, Harness, ts};

use crate::catch_up::{defaults, read_dir};

/// A letter on the due date's next day at 10:00 local, under Colombia's policy edited by `edit`.
fn letters(edit: impl Fn(&mut PolicyConfig)) -> Vec<Action> {
    let mut cfg: EngineConfig =
        toml::from_str(&std::fs::read_to_string(defaults().join("decisions.toml")).unwrap())
            .unwrap();
    cfg.strategies.insert(
        0,
        StrategyConfig {
            id: "letters".into(),
            segments: vec![],
            stages: vec![],
            steps: vec![StepConfig {
                id: "letter-d1".into(),
                channel: Channel::Letter,
                template: "formal_notice".into(),
                day: 1,
                from: Default::default(),
                at: "10:00".into(),
            }],
            on_broken_promise: None,
            on_paid_in_full: None,
            arms: vec![],
            catch_up: Default::default(),
        },
    );
    let mut policies: Vec<PolicyConfig> = read_dir("policies");
    for p in policies.iter_mut().filter(|p| p.id == "CO") {
        edit(p);
    }
    let engine = Engine::new(&cfg, &policies, &read_dir("holidays")).unwrap();
    let at = ts("2026-04-01T14:00:00Z");
    let mut h = Harness::new(engine, "D-1", at);
    h.feed(&testkit::debtor_upserted("D-1", "CO", "America/Bogota", at))
        .unwrap();
    // Due Wednesday 1 April: the letter falls on Holy Thursday, a festivo.
    h.feed(&testkit::obligation(
        "D-1",
        "L1",
        "COP",
        "900000",
        "2026-04-01",
        at.plus_ms(1000),
    ))
    .unwrap();
    h.advance_to(ts("2026-04-08T00:00:00Z"));
    h.out
        .actions
        .iter()
        .filter(|a| a.channel == Channel::Letter)
        .cloned()
        .collect()
}

#[test]
fn by_default_blocked_days_bind_the_window_channels_only() {
    let sent = letters(|_| {});
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].not_before,
        ts("2026-04-02T15:00:00Z"),
        "the festivo itself, 10:00 in Bogotá"
    );
}

#[test]
fn a_policy_can_bind_letters_to_its_blocked_days() {
    let sent = letters(|p| {
        let mut channels = p.window_channels.clone();
        channels.push(Channel::Letter);
        p.blocked_day_channels = Some(channels);
    });
    assert_eq!(sent.len(), 1);
    // Not Thursday or Friday (festivos): Saturday from its first minute, the hours not binding letters.
    assert_eq!(
        sent[0].not_before,
        ts("2026-04-04T05:00:00Z"),
        "Saturday 00:00 in Bogotá"
    );
}

#[test]
fn a_policy_can_bind_letters_to_its_hours_too() {
    let sent = letters(|p| {
        p.window_channels.push(Channel::Letter);
    });
    // Blocked days follow the window channels by default: Saturday, inside Saturday's 08:00-15:00 window.
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].not_before,
        ts("2026-04-04T13:00:00Z"),
        "Saturday 08:00 in Bogotá"
    );
}
