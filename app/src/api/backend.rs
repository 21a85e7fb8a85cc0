//! Where the API reads from: the partitions an engine instance owns.

use std::sync::{Arc, Mutex};

use mora_connector_kafka::{InstanceView, ReloadReport};
use mora_domain::engine::Engine;
use mora_runtime::PartitionWorker;

/// Read access to owned partitions, and reloads.
pub trait Backend: Send + Sync + 'static {
    /// Runs `f` over the owned partitions' workers, possibly in several calls (one per engine thread, which waits
    /// meanwhile: keep `f` short).
    fn visit(&self, f: &mut dyn FnMut(&[&PartitionWorker]));
    /// Runs `f` over the worker of `partition` when this instance owns it (only its owner waits). By default, a
    /// visit of every owned partition.
    fn visit_partition(&self, partition: i32, f: &mut dyn FnMut(&PartitionWorker)) {
        self.visit(&mut |workers| {
            for w in workers.iter().filter(|w| w.partition() == partition) {
                f(w);
            }
        });
    }
    /// The configuration in force.
    fn engine(&self) -> Arc<Engine>;
    /// Swaps in a validated configuration and re-derives every owned debtor.
    fn reload(&self, engine: Arc<Engine>) -> ReloadReport;
    /// Whether the instance is serving (partitions assigned and restored).
    fn ready(&self) -> bool;
    /// Partitions of the input (all instances together), when known.
    fn partitions_total(&self) -> Option<u32> {
        None
    }
}

/// `mora run`: the Kafka pipeline's partitions.
#[derive(Debug, Clone)]
pub struct KafkaBackend(pub InstanceView);

impl Backend for KafkaBackend {
    fn visit(&self, f: &mut dyn FnMut(&[&PartitionWorker])) {
        self.0.with_workers(|w| f(w));
    }
    fn visit_partition(&self, partition: i32, f: &mut dyn FnMut(&PartitionWorker)) {
        self.0.with_partition(partition, |w| f(w));
    }
    fn engine(&self) -> Arc<Engine> {
        self.0.engine()
    }
    fn reload(&self, engine: Arc<Engine>) -> ReloadReport {
        self.0.reload(engine)
    }
    fn ready(&self) -> bool {
        let s = self.0.stats();
        !s.assigned.is_empty() && s.error.is_none()
    }
    fn partitions_total(&self) -> Option<u32> {
        u32::try_from(self.0.stats().partitions_total)
            .ok()
            .filter(|n| *n > 0)
    }
}

/// `mora demo`: the simulation's partition workers.
#[derive(Debug, Clone)]
pub struct DemoBackend {
    /// One per partition.
    pub workers: Vec<Arc<Mutex<PartitionWorker>>>,
    /// The configuration in force.
    pub engine: Arc<Mutex<Arc<Engine>>>,
}

impl Backend for DemoBackend {
    fn visit(&self, f: &mut dyn FnMut(&[&PartitionWorker])) {
        let guards: Vec<_> = self
            .workers
            .iter()
            .map(|w| w.lock().unwrap_or_else(|e| e.into_inner()))
            .collect();
        let refs: Vec<&PartitionWorker> = guards.iter().map(|g| &**g).collect();
        f(&refs);
    }
    fn engine(&self) -> Arc<Engine> {
        self.engine
            .lock()
            .map(|e| e.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }
    fn reload(&self, engine: Arc<Engine>) -> ReloadReport {
        let started = std::time::Instant::now();
        let (mut debtors, mut changed) = (0u64, 0u64);
        for w in &self.workers {
            let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
            debtors += w.len() as u64;
            changed += w.set_engine(engine.clone()) as u64;
        }
        if let Ok(mut e) = self.engine.lock() {
            *e = engine;
        }
        ReloadReport {
            debtors,
            changed,
            millis: started.elapsed().as_secs_f64() * 1e3,
        }
    }
    fn ready(&self) -> bool {
        true
    }
}
