//! Variable share difficulty: each connection's difficulty retargeted toward a rate of
//! shares per minute, so that a fast miner does not flood the pool and a slow one still shows
//! its work often.
//!
//! The rule: shares are counted from the start of a window. The window closes when it is
//! `retarget_s` old, or early once it holds 16 shares at more than twice the wanted rate. At
//! the close, `ratio = observed rate / wanted rate`; inside the band 0.7..=1.4 nothing
//! changes, otherwise the difficulty is multiplied by the ratio, by at most 4 or 1/4 a step,
//! within `min..=max`. A new window starts either way.

/// How the pool retargets share difficulty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VardiffConfig {
    /// Wanted shares per minute per connection.
    pub shares_per_minute: f64,
    /// Seconds between retargets.
    pub retarget_s: f64,
    /// The lowest difficulty.
    pub min: f64,
    /// The highest difficulty.
    pub max: f64,
}

/// One connection's difficulty and its current window.
#[derive(Debug, Clone, Copy)]
pub struct Vardiff {
    config: VardiffConfig,
    difficulty: f64,
    window_start: f64,
    shares: u32,
}

impl Vardiff {
    /// Starts at `difficulty` (clamped) at time `now_s`.
    #[must_use]
    pub const fn new(config: VardiffConfig, difficulty: f64, now_s: f64) -> Self {
        Self {
            config,
            difficulty: difficulty.clamp(config.min, config.max),
            window_start: now_s,
            shares: 0,
        }
    }

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> VardiffConfig {
        self.config
    }

    /// The current difficulty.
    #[must_use]
    pub const fn difficulty(&self) -> f64 {
        self.difficulty
    }

    /// Counts an accepted share at `now_s`; returns the new difficulty if it changed.
    pub fn on_share(&mut self, now_s: f64) -> Option<f64> {
        self.shares += 1;
        let elapsed = now_s - self.window_start;
        let rate = f64::from(self.shares) * 60.0 / elapsed.max(1e-3);
        let early = self.shares >= 16 && rate > 2.0 * self.config.shares_per_minute;
        if early || elapsed >= self.config.retarget_s {
            self.retarget(now_s)
        } else {
            None
        }
    }

    /// Checks the window at `now_s` without a share (a miner whose difficulty is too high
    /// sends none); returns the new difficulty if it changed.
    pub fn on_tick(&mut self, now_s: f64) -> Option<f64> {
        (now_s - self.window_start >= self.config.retarget_s).then(|| self.retarget(now_s))?
    }

    fn retarget(&mut self, now_s: f64) -> Option<f64> {
        let elapsed = (now_s - self.window_start).max(1e-3);
        let rate = f64::from(self.shares) * 60.0 / elapsed;
        self.window_start = now_s;
        self.shares = 0;
        let ratio = rate / self.config.shares_per_minute;
        if (0.7..=1.4).contains(&ratio) {
            return None;
        }
        let next =
            (self.difficulty * ratio.clamp(0.25, 4.0)).clamp(self.config.min, self.config.max);
        if next == self.difficulty {
            return None;
        }
        self.difficulty = next;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: VardiffConfig = VardiffConfig {
        shares_per_minute: 20.0,
        retarget_s: 30.0,
        min: 0.001,
        max: 1e6,
    };

    /// A miner of `hashes_per_s` finds shares of difficulty d every d·2^32 / rate seconds on
    /// average; simulate it exactly at that mean and see the difficulty settle at the rate
    /// that gives 20 a minute.
    #[test]
    fn settles_where_the_wanted_rate_is() {
        let rate = 5e6; // hashes per second
        let mut v = Vardiff::new(CONFIG, 0.001, 0.0);
        let mut t = 0.0;
        for _ in 0..2000 {
            t += v.difficulty() * 4_294_967_296.0 / rate;
            v.on_share(t);
        }
        let shares_per_minute = 60.0 * rate / (v.difficulty() * 4_294_967_296.0);
        assert!(
            (14.0..=28.0).contains(&shares_per_minute),
            "{shares_per_minute}"
        );
    }

    #[test]
    fn steps_are_bounded_and_early_retarget_catches_a_flood() {
        let mut v = Vardiff::new(CONFIG, 1.0, 0.0);
        // 16 shares in one second: 960 a minute, 48 times the wanted rate; one step is ×4.
        let mut changed = None;
        for i in 1..=16 {
            changed = v.on_share(f64::from(i) / 16.0);
        }
        assert_eq!(changed, Some(4.0));
        // No shares for a window: ÷4.
        assert_eq!(v.on_tick(10.0), None, "the window is not over");
        assert_eq!(v.on_tick(31.0), Some(1.0));
        // Clamped to the configured range.
        let mut low = Vardiff::new(CONFIG, 0.002, 0.0);
        assert_eq!(low.on_tick(30.0), Some(0.001));
        assert_eq!(low.on_tick(60.0), None);
        // Inside the band nothing changes: 10 shares in 30 s is 20 a minute.
        let mut even = Vardiff::new(CONFIG, 1.0, 0.0);
        let got: Vec<_> = (1..=10)
            .filter_map(|i| even.on_share(f64::from(i) * 3.0))
            .collect();
        assert!(got.is_empty(), "{got:?}");
    }
}
