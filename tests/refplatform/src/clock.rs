//! Injected time source.
//!
//! Everything in the platform that depends on "now" (challenge expiry, account
//! lifetime, the sweeper) asks a [`Clock`] instead of the system, so tests can
//! move time forward deterministically instead of sleeping.

use parking_lot::Mutex;
use time::OffsetDateTime;

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// The current instant, in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// The real wall clock; what the binary uses.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to, so tests can cross expiry
/// boundaries without waiting.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<OffsetDateTime>,
}

impl ManualClock {
    /// A manual clock starting at `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        Self { now: Mutex::new(start) }
    }

    /// A manual clock starting at the current wall-clock time (truncated to
    /// whole seconds so RFC 3339 round-trips are exact). Starting near the
    /// real time keeps timestamps plausible for clients such as wrangler
    /// that compare `expiresAt` with their own clock.
    pub fn starting_now() -> Self {
        let now = OffsetDateTime::now_utc();
        let now = now.replace_nanosecond(0).unwrap_or(now);
        Self::new(now)
    }

    /// Move the clock forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        let mut now = self.now.lock();
        *now += by;
    }

    /// Jump the clock to `to` (forwards or backwards).
    pub fn set(&self, to: OffsetDateTime) {
        *self.now.lock() = to;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::starting_now()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = time::macros::datetime!(2026-01-01 00:00 UTC);
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(std::time::Duration::from_secs(90));
        assert_eq!(clock.now(), start + time::Duration::seconds(90));
        clock.set(start);
        assert_eq!(clock.now(), start);
    }
}
