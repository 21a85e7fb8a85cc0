//! mora's benchmarks. Figures are printed, never asserted: goals are reported against in the README.
//!
//! `cargo bench -p mora-benches` runs every group; `MORA_BENCH_DEBTORS` sets the warmed portfolio (default 1 M).

// criterion's macros generate the undocumented functions of a bench target.
#![allow(missing_docs)]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mora_benches::{NullSink, Workload, record, resident_bytes, shipped_engine, warmed};
use mora_domain::action::{Action, ActionId, AuditRecord, DecisionKind, Reason};
use mora_domain::debtor::{ContactMark, Debtor, MarkKind};
use mora_domain::engine::Engine;
use mora_domain::ids::Channel;
use mora_domain::stage::Stage;
use mora_domain::testkit;
use mora_schemas::{Family, Wire, decode_event, encode_event};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Events per timed batch of the decision-core benchmark.
const BATCH: usize = 1_000;

fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE.get_or_init(|| Arc::new(shipped_engine())).clone()
}

fn debtors() -> u64 {
    std::env::var("MORA_BENCH_DEBTORS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn workload() -> &'static Workload {
    static W: OnceLock<Workload> = OnceLock::new();
    W.get_or_init(|| {
        let started = Instant::now();
        let w = record(&engine(), debtors(), 45, 30);
        eprintln!(
            "workload: {} debtors, {} warm-up events, {} measured events, recorded in {:.1}s",
            w.debtors,
            w.warm.len(),
            w.measured.len(),
            started.elapsed().as_secs_f64()
        );
        w
    })
}

/// Decision-core throughput on a warmed portfolio, one core, realistic mix (events plus the timers they fire).
fn decision_core(c: &mut Criterion) {
    let w = workload();
    let rss_before = resident_bytes().unwrap_or(0);
    let heap_before = mora_benches::heap_allocated().unwrap_or(0);
    let mut worker = warmed(&engine(), &w.warm);
    let heap_after = mora_benches::heap_allocated().unwrap_or(0);
    let rss_after = resident_bytes().unwrap_or(0);
    let live = heap_after as i64 - heap_before as i64;
    eprintln!(
        "memory: {} debtors; live heap {:.0} bytes/debtor; resident {:.0} bytes/debtor; {} timers pending",
        worker.len(),
        live as f64 / worker.len() as f64,
        rss_after.saturating_sub(rss_before) as f64 / worker.len() as f64,
        worker.pending_timers()
    );
    let mut g = c.benchmark_group("mora_runtime::PartitionWorker::on_event");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    let mut cursor = 0usize;
    let mut wrapped = 0u32;
    g.bench_function("warmed_portfolio_realistic_mix", |b| {
        b.iter_custom(|iters| {
            let mut sink = NullSink;
            let started = Instant::now();
            for _ in 0..iters {
                for _ in 0..BATCH {
                    if cursor == w.measured.len() {
                        cursor = 0;
                        wrapped += 1;
                    }
                    let _ = worker.on_event(&w.measured[cursor], &mut sink);
                    cursor += 1;
                }
            }
            started.elapsed()
        });
    });
    g.finish();
    if wrapped > 0 {
        eprintln!(
            "note: the measured log was replayed {wrapped} extra time(s); later passes are partly redeliveries"
        );
    }
}

/// The compliance guard alone: an allowed check and one that must search for the next window.
fn guard(c: &mut Criterion) {
    let engine = engine();
    let policy = engine.policies.lookup("CO", None).expect("CO policy");
    let mut d = Debtor::new("G".into());
    d.profile = Some(testkit::profile("CO", "America/Bogota"));
    d.cold_mut().contacts = thin_vec::thin_vec![ContactMark {
        at: testkit::ts("2026-03-01T15:00:00Z"),
        channel: Channel::Sms,
        kind: MarkKind::Attempt,
    }];
    let mut g = c.benchmark_group("mora_domain::policy::Policy::check");
    g.throughput(Throughput::Elements(1));
    let allowed = testkit::ts("2026-03-03T15:00:00Z");
    let night = testkit::ts("2026-03-07T23:30:00Z"); // Saturday night: Sunday blocked, Monday 07:00
    g.bench_function("allowed", |b| {
        b.iter(|| policy.check(&d, Channel::Sms, allowed))
    });
    g.bench_function("deferred_over_weekend", |b| {
        b.iter(|| policy.check(&d, Channel::Sms, night))
    });
    g.finish();
}

/// Avro decoding: apache-avro's generic value path (any writer schema, through schema resolution) against the
/// project's fast path (records written with the current schema, read straight from the binary), on a payment and
/// on the largest record, a debtor profile.
fn avro(c: &mut Criterion) {
    let at = testkit::ts("2026-03-03T15:00:00Z");
    let payment = testkit::payment("D00012345", "D00012345-P99", "COP", "250000", None, at);
    let profile = testkit::debtor_upserted("D00012345", "CO", "America/Bogota", at);
    let mut g = c.benchmark_group("mora_schemas");
    g.throughput(Throughput::Elements(1));
    for (name, family, ev) in [
        ("payment", Family::Payment, &payment),
        ("debtor_upserted", Family::Account, &profile),
    ] {
        let bytes = encode_event(ev, Wire::Confluent).expect("encodes");
        g.bench_function(format!("decode_event_generic/{name}"), |b| {
            b.iter(|| mora_schemas::decode_event_generic(family, &bytes))
        });
        g.bench_function(format!("decode_event_fast/{name}"), |b| {
            b.iter(|| decode_event(family, &bytes))
        });
    }
    let (action, audit) = outputs(at);
    g.bench_function("encode_action_generic", |b| {
        b.iter(|| mora_schemas::encode_action_generic(&action, Wire::Confluent))
    });
    g.bench_function("encode_action_fast", |b| {
        b.iter(|| mora_schemas::encode_action(&action, Wire::Confluent))
    });
    g.bench_function("encode_audit_generic", |b| {
        b.iter(|| mora_schemas::encode_audit_generic(&audit, Wire::Confluent))
    });
    g.bench_function("encode_audit_fast", |b| {
        b.iter(|| mora_schemas::encode_audit(&audit, Wire::Confluent))
    });
    g.bench_function("encode_event/payment", |b| {
        b.iter_batched(
            || payment.clone(),
            |e| encode_event(&e, Wire::Confluent),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// A typical dialer action and the audit record that goes with it.
fn outputs(at: mora_domain::time::Ts) -> (Action, AuditRecord) {
    let mut amounts_due = mora_domain::money::Balances::default();
    amounts_due.add(
        testkit::cur("COP"),
        rust_decimal::Decimal::new(12_500_000_000, 4),
    );
    let action = Action {
        action_id: ActionId::derive(&[b"D00012345", b"dialer"]),
        debtor_id: "D00012345".into(),
        channel: Channel::Dialer,
        template: "dialer-early".into(),
        amounts_due,
        overdue_base: rust_decimal::Decimal::new(3_125_000, 4),
        dpd: 17,
        stage: Stage::Administrative,
        segment: "early-high-balance".into(),
        priority: 81_250,
        reason: Reason {
            strategy: "early-digital".into(),
            step: "call-day-15".into(),
            trigger: "dpd:15".into(),
        },
        jurisdiction: "CO".into(),
        created_at: at,
        not_before: at,
        not_after: Some(mora_domain::time::Ts(at.0 + 8 * 3_600_000)),
        arm: "champion".into(),
    };
    let audit = AuditRecord {
        debtor_id: action.debtor_id.clone(),
        at,
        kind: DecisionKind::Emitted,
        action_id: Some(action.action_id.clone()),
        channel: Some(Channel::Dialer),
        rule: "strategy/early-digital/call-day-15".into(),
        reason: "dpd:15".into(),
        until: None,
        strategy: Some("early-digital".into()),
        arm: Some("champion".into()),
        subject: None,
        previous: None,
        debtor: Some(mora_domain::action::DebtorAtDecision {
            dpd: 15,
            bucket: "1-30".into(),
            stage: "administrative".into(),
            segment: "early-digital".into(),
            priority: 4_210,
        }),
    };
    (action, audit)
}

/// Records framed with schema-registry ids: the table lookup and read of a writer schema equal to mora's (must cost
/// about what a built-in id costs), and of an evolved writer (an extra field with a default), rewritten into mora's
/// layout by its compiled plan, against apache-avro's schema resolution (the path an older built-in id takes).
fn registry_ids(c: &mut Criterion) {
    use mora_schemas::{Registry, SchemaKind, SchemaTable, WriterSchema, set_schema_id};
    let at = testkit::ts("2026-03-03T15:00:00Z");
    let payment = testkit::payment("D00012345", "D00012345-P99", "COP", "250000", None, at);
    let family = Family::Payment;
    let builtin = encode_event(&payment, Wire::Confluent).expect("encodes");
    let source = Registry::global().source(SchemaKind::Event(family));
    let mut evolved: serde_json::Value = serde_json::from_str(source).expect("json");
    if let Some(fields) = evolved["fields"].as_array_mut() {
        fields.push(
            serde_json::json!({"name": "source_system", "type": "string", "default": "core"}),
        );
    }
    let table = SchemaTable::new();
    table.insert(family, 4711, WriterSchema::for_family(family, source));
    table.insert(
        family,
        4712,
        WriterSchema::for_family(family, &evolved.to_string()),
    );
    let mut view = table.view();
    let mut same = builtin.clone();
    set_schema_id(&mut same, 4711);
    let mut extended = builtin.clone();
    set_schema_id(&mut extended, 4712);
    extended.extend_from_slice(&[6, b'e', b'r', b'p']);
    for bytes in [&same, &extended] {
        let id = mora_schemas::schema_id(bytes).unwrap_or_default();
        let read = view.get(family, id).map(|w| w.decode_event(family, bytes));
        assert!(
            matches!(read, Some(Ok(ref ev)) if *ev == payment),
            "{read:?}"
        );
    }
    let mut g = c.benchmark_group("mora_schemas_registry");
    g.throughput(Throughput::Elements(1));
    g.bench_function("builtin_id/payment", |b| {
        b.iter(|| decode_event(family, &builtin))
    });
    g.bench_function("registry_id/payment", |b| {
        b.iter(|| {
            let id = mora_schemas::schema_id(&same).unwrap_or_default();
            view.get(family, id).map(|w| w.decode_event(family, &same))
        })
    });
    g.bench_function("registry_evolved_writer/payment", |b| {
        b.iter(|| {
            let id = mora_schemas::schema_id(&extended).unwrap_or_default();
            view.get(family, id)
                .map(|w| w.decode_event(family, &extended))
        })
    });
    g.bench_function("generic_resolution/payment", |b| {
        b.iter(|| mora_schemas::decode_event_generic(family, &builtin))
    });
    g.finish();
}

criterion_group!(benches, guard, avro, registry_ids, decision_core);
criterion_main!(benches);
