//! Reading Intel/AMD RAPL package energy counters from the powercap sysfs tree
//! (`/sys/class/powercap/intel-rapl:N/energy_uj`; AMD Zen exposes the same interface).
//!
//! The root directory is a parameter, so the reader is tested against a fake tree; many
//! machines (VMs, containers) have no readable counters, and callers then fall back to an
//! estimate.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::metrics::energy::counter_delta;

/// The standard powercap root.
pub const POWERCAP_ROOT: &str = "/sys/class/powercap";

/// One package-level energy counter.
#[derive(Debug, Clone)]
struct Zone {
    energy: PathBuf,
    max_range: u64,
}

/// The package energy counters of a machine.
#[derive(Debug, Clone)]
pub struct RaplReader {
    zones: Vec<Zone>,
}

fn read_u64(path: &Path) -> io::Result<u64> {
    fs::read_to_string(path)?.trim().parse().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

impl RaplReader {
    /// Finds the readable package zones (`intel-rapl:N`, not their sub-zones) under `root`;
    /// `None` when there is none.
    #[must_use]
    pub fn open(root: &Path) -> Option<Self> {
        let mut zones: Vec<Zone> = fs::read_dir(root)
            .ok()?
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("intel-rapl:") && name.matches(':').count() == 1
            })
            .filter_map(|e| {
                let energy = e.path().join("energy_uj");
                read_u64(&energy).ok()?;
                let max_range = read_u64(&e.path().join("max_energy_range_uj")).unwrap_or(u64::MAX);
                Some(Zone { energy, max_range })
            })
            .collect();
        zones.sort_by(|a, b| a.energy.cmp(&b.energy));
        (!zones.is_empty()).then_some(Self { zones })
    }

    /// Reads every zone's counter (microjoules).
    ///
    /// # Errors
    /// I/O errors reading a counter.
    pub fn read(&self) -> io::Result<Vec<u64>> {
        self.zones.iter().map(|z| read_u64(&z.energy)).collect()
    }

    /// Joules used between two readings, summed over zones, undoing counter wrap-around.
    #[must_use]
    pub fn joules_between(&self, before: &[u64], after: &[u64]) -> f64 {
        self.zones
            .iter()
            .zip(before.iter().zip(after))
            .map(|(z, (b, a))| counter_delta(*b, *a, z.max_range) as f64 / 1e6)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(root: &Path, name: &str, energy: u64, max: u64) {
        let dir = root.join(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("energy_uj"), format!("{energy}\n")).unwrap();
        fs::write(dir.join("max_energy_range_uj"), format!("{max}\n")).unwrap();
    }

    #[test]
    fn reads_package_zones_and_handles_wrap_around() {
        let dir = std::env::temp_dir().join(format!("chainsmith-rapl-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        zone(&dir, "intel-rapl:0", 1_000_000, 10_000_000);
        zone(&dir, "intel-rapl:1", 9_500_000, 10_000_000);
        zone(&dir, "intel-rapl:0:0", 5, 10); // a sub-zone (core): not counted again
        let r = RaplReader::open(&dir).unwrap();
        let before = r.read().unwrap();
        assert_eq!(before, vec![1_000_000, 9_500_000]);
        zone(&dir, "intel-rapl:0", 3_000_000, 10_000_000);
        zone(&dir, "intel-rapl:1", 500_000, 10_000_000); // wrapped
        let after = r.read().unwrap();
        assert!((r.joules_between(&before, &after) - 3.0).abs() < 1e-9);
        fs::remove_dir_all(&dir).unwrap();
        assert!(RaplReader::open(&dir).is_none());
    }
}
