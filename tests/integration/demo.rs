//! The embedded demo through the shipped configuration: determinism and the compliance rules end to end.

use std::collections::BTreeMap;

use chrono::DateTime;

use crate::utils;

#[test]
fn the_same_seed_gives_byte_identical_actions() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let sa = utils::demo(a.path(), 7, 3_000, 50);
    let sb = utils::demo(b.path(), 7, 3_000, 50);
    for c in [
        "dialer", "sms", "whatsapp", "email", "letter", "agency", "legal",
    ] {
        let name = format!("actions/{c}.jsonl");
        let (x, y) = (
            std::fs::read(a.path().join(&name)).unwrap(),
            std::fs::read(b.path().join(&name)).unwrap(),
        );
        assert!(x == y, "{name} differs between two runs of the same seed");
    }
    assert!(
        sa.actions > 1_000,
        "a 3,000-debtor portfolio over 50 days produces actions ({})",
        sa.actions
    );
    assert_eq!(
        (sa.events, sa.actions, &sa.portfolio),
        (sb.events, sb.actions, &sb.portfolio)
    );
    let sc = utils::demo(tempfile::tempdir().unwrap().path(), 8, 3_000, 50);
    assert_ne!(
        sa.portfolio, sc.portfolio,
        "another seed is another portfolio"
    );
}

fn ts(v: &serde_json::Value) -> i64 {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

#[test]
fn shipped_policies_hold_across_the_whole_portfolio() {
    let dir = tempfile::tempdir().unwrap();
    let summary = utils::demo(dir.path(), 11, 4_000, 60);
    let actions = utils::actions(dir.path());
    assert_eq!(actions.len() as u64, summary.actions);
    let direct = ["dialer", "sms", "whatsapp", "email"];
    let mut by_debtor: BTreeMap<&str, Vec<(i64, &str, &str)>> = BTreeMap::new();
    for a in &actions {
        let j = a["jurisdiction"].as_str().unwrap();
        assert!(
            ["CO", "MX", "PE", "CL", "US", "US-MA"].contains(&j),
            "unexpected jurisdiction {j}"
        );
        by_debtor
            .entry(a["debtor_id"].as_str().unwrap())
            .or_default()
            .push((ts(&a["not_before"]), a["channel"].as_str().unwrap(), j));
    }
    const DAY: i64 = 86_400_000;
    for (debtor, mut sent) in by_debtor {
        sent.sort();
        let contacts: Vec<_> = sent.iter().filter(|(_, c, _)| direct.contains(c)).collect();
        for w in contacts.windows(2) {
            let ((t0, _, j), (t1, c1, _)) = (w[0], w[1]);
            if ["CO", "MX", "PE"].contains(j) {
                assert!(
                    t1 - t0 >= DAY,
                    "{debtor} ({j}) contacted twice within 24 h: {c1} at {t1}"
                );
            }
        }
        if sent.first().is_some_and(|(_, _, j)| *j == "CL") {
            let calls: Vec<i64> = sent
                .iter()
                .filter(|(_, c, _)| *c == "dialer")
                .map(|(t, _, _)| *t)
                .collect();
            for w in calls.windows(2) {
                assert!(
                    w[1] - w[0] >= 7 * DAY,
                    "{debtor} (CL) called twice within a week"
                );
            }
        }
        if sent.first().is_some_and(|(_, _, j)| *j == "CO") {
            // Ley 2300: no several channels in the same week.
            for (i, (t, c, _)) in contacts.iter().enumerate() {
                for (t2, c2, _) in &contacts[i + 1..] {
                    assert!(
                        c == c2 || t2 - t >= 7 * DAY,
                        "{debtor} (CO) reached on {c} and {c2} within a week"
                    );
                }
            }
        }
    }
    // Debtors of a market with no policy file are never contacted; their actions are dropped with the reason.
    assert!(
        summary
            .blocked_by_reason
            .get("unknown_jurisdiction")
            .copied()
            .unwrap_or(0)
            > 0
    );
}

#[test]
fn no_seed_makes_the_demo_fail() {
    for seed in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        let s = utils::demo(dir.path(), seed, 400, 40);
        assert!(s.events > 0, "seed {seed}");
    }
}
