//! What `bench` and `mine` say about the CPU: its model, cores and threads, and the features
//! the hash backends need.

use chainsmith::hash::Backend;
use serde::Serialize;

/// The CPU this process runs on.
#[derive(Serialize)]
pub(crate) struct Cpu {
    /// The model name (`/proc/cpuinfo`), or `unknown`.
    pub(crate) model: String,
    /// Physical cores (`/proc/cpuinfo`; the threads when it does not say).
    cores: usize,
    /// Hardware threads this process may run on.
    threads: usize,
    /// The features a vector backend needs that this CPU has, named as the backends are:
    /// `avx512` (AVX-512 F and BW), `sha-ni`, `avx2`.
    pub(crate) features: Vec<&'static str>,
    /// The backend `mine` uses without `--backend`: the fastest the CPU supports.
    backend: &'static str,
}

impl Cpu {
    /// Reads `/proc/cpuinfo` and asks the hash backends which features they find.
    pub(crate) fn detect() -> Self {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let field = |line: &str, key: &str| {
            line.split_once(':')
                .filter(|(k, _)| k.trim() == key)
                .map(|(_, v)| v.trim().to_owned())
        };
        let model = info
            .lines()
            .find_map(|l| field(l, "model name").or_else(|| field(l, "Model")))
            .unwrap_or_else(|| "unknown".to_owned());
        // A physical core is a (physical id, core id) pair.
        let mut cores = std::collections::BTreeSet::new();
        for block in info.split("\n\n") {
            let id = |key| block.lines().find_map(|l| field(l, key));
            if let (Some(package), Some(core)) = (id("physical id"), id("core id")) {
                cores.insert((package, core));
            }
        }
        Self {
            model,
            cores: if cores.is_empty() {
                threads
            } else {
                cores.len()
            },
            threads,
            features: Backend::ALL
                .into_iter()
                .filter(|b| *b != Backend::Soft && b.is_supported())
                .map(Backend::name)
                .collect(),
            backend: Backend::detect().name(),
        }
    }

    /// The banner's lines: the model and cores, each feature yes or no, the backend chosen.
    pub(crate) fn banner(&self) -> String {
        let features = [
            (Backend::ShaNi, "SHA-NI"),
            (Backend::Avx2, "AVX2"),
            (Backend::Avx512, "AVX-512"),
        ]
        .map(|(b, label)| {
            let has = if self.features.contains(&b.name()) {
                "yes"
            } else {
                "no"
            };
            format!("{label} {has}")
        })
        .join(", ");
        format!(
            "CPU       {}, {} cores, {} threads\n\
             features  {features}\n\
             backend   {} (the fastest this CPU runs; mine uses it)\n",
            self.model, self.cores, self.threads, self.backend
        )
    }
}
