//! Helpers shared by the integration areas.

use std::path::Path;

use mora::demo::{DemoArgs, Summary};

/// Runs a small demo into `out` with `seed`.
pub(crate) fn demo(out: &Path, seed: u64, debtors: u64, days: u32) -> Summary {
    let args = DemoArgs {
        seed,
        debtors,
        days,
        ..DemoArgs::small(out)
    };
    let loaded = mora::config::load(None).expect("built-in configuration loads");
    mora::demo::run(&args, loaded.engine).expect("demo runs")
}

/// Every action written under `out`, as JSON values, file by file in channel order.
pub(crate) fn actions(out: &Path) -> Vec<serde_json::Value> {
    let mut files: Vec<_> = std::fs::read_dir(out.join("actions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}
