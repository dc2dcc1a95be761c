//! How a plant's sensors are spread over workers: by asset where that keeps the workers evenly loaded.

use std::sync::Arc;

use crate::catalog::{Catalog, SensorId};
use crate::runtime::{busiest_share, worker_of_route};

/// Each sensor's route (spread over workers as every route is): its asset's
/// id, so an asset's windows close on the worker that aligns them, detects on
/// them and keeps the asset's twin, and reach those stages without crossing
/// workers; or, when a plant's assets are too few or too uneven to share the
/// workers out evenly, its own id. With verification, a sensor's events are
/// checked on that worker too, so checked readings are windowed where they are.
#[derive(Debug, Clone)]
pub struct SensorRoutes {
    /// Each sensor's route.
    routes: Arc<[u64]>,
    /// Each sensor's worker, looked up once per event with verification.
    workers: Arc<[u32]>,
    by_asset: bool,
}

/// How much busier the busiest worker may be when sensors are routed by asset
/// than when routed by sensor. Keeping an asset's windows in place saved a
/// two-worker TwinBench replay 3 % of its CPU (1.234 → 1.201 s, 16
/// alternated runs) and, with verification, 6 % of its time (checked events
/// windowed where they are checked: median 2.18 → 2.05 s), so a worse
/// balance than this would cost about what it saves.
const ASSET_IMBALANCE: f64 = 1.03;

impl SensorRoutes {
    /// The routes for `catalog` on `peers` workers, each sensor weighed by its
    /// rated rate (1 Hz where the sensor table gives none).
    pub fn for_plant(catalog: &Catalog, peers: usize) -> Self {
        let rate = |sensor: usize| catalog.sensors()[sensor].rate_hz.unwrap_or(1.0);
        let sensors = 0..catalog.sensors().len();
        let asset_of = |sensor: usize| u64::from(catalog.asset_of(sensor as SensorId));
        let by_sensor = busiest_share(sensors.clone().map(|s| (s as u64, rate(s))), peers);
        let by_asset = busiest_share(sensors.clone().map(|s| (asset_of(s), rate(s))), peers);
        let by_asset = by_asset <= by_sensor * ASSET_IMBALANCE;
        let routes: Arc<[u64]> = sensors
            .map(|s| if by_asset { asset_of(s) } else { s as u64 })
            .collect();
        let workers = routes
            .iter()
            .map(|&r| worker_of_route(r, peers) as u32)
            .collect();
        SensorRoutes {
            routes,
            workers,
            by_asset,
        }
    }

    /// The route of `sensor`.
    #[inline]
    pub fn route(&self, sensor: &SensorId) -> u64 {
        self.routes[*sensor as usize]
    }

    /// The worker a sensor's route leads to.
    #[inline]
    pub fn worker_of(&self, sensor: SensorId) -> u32 {
        self.workers[sensor as usize]
    }

    /// Whether sensors route by their asset.
    pub fn by_asset(&self) -> bool {
        self.by_asset
    }
}

#[cfg(test)]
mod tests {
    use super::SensorRoutes;
    use crate::catalog::Catalog;
    use crate::runtime::spread;

    /// A plant of `assets` assets with `channels` sensors each.
    fn plant(assets: usize, channels: usize) -> Catalog {
        let entries: Vec<(String, String, String)> = (0..assets)
            .flat_map(|a| {
                (0..channels).map(move |c| (format!("a{a}/c{c}"), format!("a{a}"), "k".to_owned()))
            })
            .collect();
        Catalog::discovered(&entries).unwrap()
    }

    #[test]
    fn many_assets_route_by_asset() {
        let catalog = plant(200, 8);
        let routes = SensorRoutes::for_plant(&catalog, 2);
        assert!(routes.by_asset());
        for sensor in 0..catalog.sensors().len() as u32 {
            let asset = u64::from(catalog.asset_of(sensor));
            assert_eq!(routes.route(&sensor), asset);
            assert_eq!(u64::from(routes.worker_of(sensor)), spread(asset) % 2);
        }
    }

    #[test]
    fn few_assets_route_by_sensor() {
        // One asset puts every window on one worker; three put two assets on one.
        for assets in [1, 3] {
            let catalog = plant(assets, 8);
            let routes = SensorRoutes::for_plant(&catalog, 2);
            assert!(!routes.by_asset(), "{assets} assets");
            for sensor in 0..catalog.sensors().len() as u32 {
                assert_eq!(routes.route(&sensor), u64::from(sensor));
            }
        }
    }

    #[test]
    fn one_worker_routes_by_asset() {
        assert!(SensorRoutes::for_plant(&plant(1, 8), 1).by_asset());
    }
}
