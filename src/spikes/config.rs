//! `[spikes]`: spike detection per rule (window, baseline, threshold, cooldown). Reads only
//! its own section; counting and alerting is `spikes`' job.

use crate::config::{Reader, Table};
use std::time::Duration;

const KEYS: &[&str] = &[
    "enabled",
    "window",
    "baseline",
    "sigma",
    "min_count",
    "cooldown",
    "every",
];

/// Spike detection per rule (`[spikes]`); on by default.
#[derive(Debug, Clone, PartialEq)]
pub struct SpikeConfig {
    pub enabled: bool,
    /// The window counted against the baseline.
    pub window: Duration,
    /// How much history the baseline reads (mean and σ of window-sized buckets).
    pub baseline: Duration,
    /// Standard deviations above the mean that count as a spike.
    pub sigma: f64,
    /// Fewer mentions than this in the window never alert, however quiet the brand.
    pub min_count: u32,
    /// No second spike alert for the same rule within this time.
    pub cooldown: Duration,
    /// How often the rules are checked.
    pub every: Duration,
}

impl Default for SpikeConfig {
    fn default() -> SpikeConfig {
        SpikeConfig {
            enabled: true,
            window: Duration::from_secs(3600),
            baseline: Duration::from_secs(14 * 86_400),
            sigma: 3.0,
            min_count: 10,
            cooldown: Duration::from_secs(6 * 3600),
            every: Duration::from_secs(300),
        }
    }
}

impl SpikeConfig {
    /// Reads `[spikes]` (optional; every key has a default).
    pub(crate) fn read(r: &mut Reader, root: &Table) -> SpikeConfig {
        let d = SpikeConfig::default();
        let Some(t) = r.table(root, "spikes") else {
            return d;
        };
        r.known_keys(t, "spikes", KEYS);
        let sigma = match t.get("sigma") {
            None => d.sigma,
            Some(item) => match item
                .as_float()
                .or_else(|| item.as_integer().map(|i| i as f64))
            {
                Some(x) if x > 0.0 && x.is_finite() => x,
                _ => {
                    let line = r.key_line(t, "sigma");
                    r.problem(
                        line,
                        "spikes.sigma",
                        "must be a positive number of standard deviations, e.g. 3".to_string(),
                    );
                    d.sigma
                }
            },
        };
        let min_count = match t.get("min_count") {
            None => d.min_count,
            Some(item) => match item.as_integer().and_then(|i| u32::try_from(i).ok()) {
                Some(n) if n >= 1 => n,
                _ => {
                    let line = r.key_line(t, "min_count");
                    r.problem(
                        line,
                        "spikes.min_count",
                        "must be a whole number of mentions, at least 1, e.g. 10".to_string(),
                    );
                    d.min_count
                }
            },
        };
        let spikes = SpikeConfig {
            enabled: r.boolean(t, "spikes", "enabled").unwrap_or(d.enabled),
            window: r.duration(t, "spikes", "window").unwrap_or(d.window),
            baseline: r.duration(t, "spikes", "baseline").unwrap_or(d.baseline),
            sigma,
            min_count,
            cooldown: r.duration(t, "spikes", "cooldown").unwrap_or(d.cooldown),
            every: r.duration(t, "spikes", "every").unwrap_or(d.every),
        };
        if spikes.baseline > Duration::from_secs(30 * 86_400) {
            let line = r.key_line(t, "baseline");
            r.problem(
                line,
                "spikes.baseline",
                "can be at most 30d (older mentions are not kept for counting)".to_string(),
            );
        }
        if spikes.window < Duration::from_secs(60) {
            let line = r.key_line(t, "window");
            r.problem(
                line,
                "spikes.window",
                "must be at least 1m (mentions are counted per window; e.g. \"1h\")".to_string(),
            );
        }
        if spikes.baseline < spikes.window * 24 {
            let line = r.key_line(t, "baseline");
            r.problem(
                line,
                "spikes.baseline",
                format!(
                    "must cover at least 24 windows ({:?}) to give a usable mean and σ",
                    spikes.window * 24
                ),
            );
        }
        spikes
    }
}
