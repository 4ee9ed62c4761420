//! Rates such as `10/hour`, turned into governor quotas.

use governor::Quota;
use std::num::NonZeroU32;
use std::time::Duration;

/// The window a rate is counted over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Per {
    /// One second.
    Second,
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One day.
    Day,
}

impl Per {
    /// The words a policy may write after the slash.
    pub(crate) const NAMES: [&'static str; 4] = ["second", "minute", "hour", "day"];

    /// Length of the window in seconds.
    pub fn secs(self) -> u64 {
        match self {
            Per::Second => 1,
            Per::Minute => 60,
            Per::Hour => 3600,
            Per::Day => 86_400,
        }
    }

    /// The word as written in a policy.
    pub fn name(self) -> &'static str {
        match self {
            Per::Second => "second",
            Per::Minute => "minute",
            Per::Hour => "hour",
            Per::Day => "day",
        }
    }
}

/// `count` requests per `per`, refilled evenly (GCRA), so `10/hour` admits one more request
/// every 6 minutes rather than 10 at the top of each hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// Requests per window.
    pub count: NonZeroU32,
    /// The window.
    pub per: Per,
}

impl Rate {
    /// Parses `N/unit`; the error text is ready to show.
    pub(crate) fn parse(text: &str) -> Result<Rate, String> {
        let bad = || {
            format!(
                "bad rate \"{text}\": expected \"N/second\", \"N/minute\", \"N/hour\" or \"N/day\" with N a whole number from 1 to {}",
                u32::MAX
            )
        };
        let (n, unit) = text.split_once('/').ok_or_else(bad)?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        let count = NonZeroU32::new(count).ok_or_else(|| {
            format!(
                "bad rate \"{text}\": a rate of 0 admits nothing; use action = \"deny\" instead"
            )
        })?;
        let unit = unit.trim();
        let per = match unit {
            "second" | "s" | "sec" => Per::Second,
            "minute" | "min" | "m" => Per::Minute,
            "hour" | "h" => Per::Hour,
            "day" | "d" => Per::Day,
            _ => {
                return Err(format!(
                    "bad rate \"{text}\": unknown unit \"{unit}\", expected one of {}{}",
                    crate::lang::error::one_of(Per::NAMES),
                    crate::lang::error::did_you_mean(unit, Per::NAMES)
                ))
            }
        };
        Ok(Rate { count, per })
    }

    /// The governor quota for this rate with the given burst; `None` only if the refill
    /// interval would round to zero (more than a billion per second), which the compiler rejects.
    pub(crate) fn quota(&self, burst: NonZeroU32) -> Option<Quota> {
        let interval = Duration::from_secs(self.per.secs()) / self.count.get();
        Quota::with_period(interval).map(|q| q.allow_burst(burst))
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.count, self.per.name())
    }
}
