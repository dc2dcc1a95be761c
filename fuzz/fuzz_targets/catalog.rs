//! The asset and sensor tables (`assets.csv`, `sensors.csv`). The input is
//! both files joined by a NUL byte (assets first); without one, it is the
//! asset table and the sensor table is empty. Any bytes must give a catalog
//! or an error, never panic; a catalog must be consistent.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use twinflow_engine::catalog::Catalog;

fuzz_target!(|data: &[u8]| {
    let (assets, sensors) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(catalog) = Catalog::from_csv(
        assets,
        Path::new("assets.csv"),
        sensors,
        Path::new("sensors.csv"),
    ) else {
        return;
    };
    for (i, asset) in catalog.assets().iter().enumerate() {
        assert_eq!(catalog.asset_id(&asset.asset), Some(i as u32));
    }
    for (i, sensor) in catalog.sensors().iter().enumerate() {
        let id = catalog
            .sensor_id(&sensor.sensor)
            .expect("every sensor has an id");
        assert_eq!(id, i as u32);
        let asset = catalog.asset(catalog.asset_of(id));
        assert_eq!(asset.asset, sensor.asset);
        assert!(sensor.min <= sensor.max);
    }
});
