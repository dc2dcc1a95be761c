//! The catalog-changes CSV of `replay --catalog-changes` (`at_us, asset,
//! line, site`), read against a small fixed catalog. `read_catalog_changes`
//! takes a path, so the input goes through a temporary file (one per process).
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use twinflow_engine::catalog::{AssetRecord, Catalog, SensorRecord};
use twinflow_pipelines::replay::read_catalog_changes;

static CATALOG: LazyLock<Catalog> = LazyLock::new(|| {
    let assets = (0..3)
        .map(|i| AssetRecord {
            asset: format!("asset-{i:04}"),
            line: format!("line-{}", i % 2),
            site: "site-0".into(),
            kind: "pump".into(),
        })
        .collect();
    let sensors = vec![SensorRecord {
        sensor: "asset-0000/temp-1".into(),
        asset: "asset-0000".into(),
        channel: "temp-1".into(),
        kind: "temperature".into(),
        sigma: 0.2,
        min: -50.0,
        max: 250.0,
        rate_hz: None,
        quantity: None,
    }];
    Catalog::new(assets, sensors).expect("valid catalog")
});

static PATH: LazyLock<PathBuf> = LazyLock::new(|| {
    std::env::temp_dir().join(format!(
        "twinflow-fuzz-catalog-changes-{}.csv",
        std::process::id()
    ))
});

fuzz_target!(|data: &[u8]| {
    std::fs::write(&*PATH, data).expect("write the input");
    let Ok(changes) = read_catalog_changes(&PATH, &CATALOG) else {
        return;
    };
    for change in &changes {
        assert!((change.asset as usize) < CATALOG.assets().len());
        if let Some((line, site)) = &change.place {
            assert!(!line.is_empty() && !site.is_empty());
        }
    }
});
