//! The key file (`keys.json`): any bytes must parse to keys or an error,
//! never panic. Keys that parse must give 32-byte keys and a key ring.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twinflow_engine::auth::{EventMac, parse_keys};
use twinflow_engine::catalog::Catalog;
use twinflow_engine::verify::KeyRing;

fuzz_target!(|data: &[u8]| {
    let Ok(keys) = parse_keys(data) else {
        return;
    };
    for key in &keys {
        let bytes = key
            .key_bytes()
            .expect("parse_keys accepted only valid keys");
        let tag = EventMac::new(&bytes).tag(&key.sensor, 0, 1.0, 0, 0);
        assert!(EventMac::new(&bytes).verify(&key.sensor, 0, 1.0, 0, 0, &tag));
    }
    // A key ring over a catalog of the keys' own sensors, as replay builds one.
    let entries: Vec<(String, String, String)> = keys
        .iter()
        .map(|k| (k.sensor.clone(), "asset".to_owned(), "kind".to_owned()))
        .collect();
    if let Ok(catalog) = Catalog::discovered(&entries) {
        let ring = KeyRing::new(&catalog, &keys).expect("every key was validated");
        for key in &keys {
            let id = catalog.sensor_id(&key.sensor).expect("catalogued");
            let _ = ring.verify(id, &key.sensor, 0, 1.0, 0, 0, Some(&[0u8; 16]));
        }
    }
});
