//! Live progress on the terminal while a run goes on.
//!
//! One bar for elapsed time against the run's duration, with a message of
//! running totals. It draws only when stderr is a terminal, so logs and CI
//! output stay clean; the final table goes to stdout either way.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::stats::{get, RunStats};

/// A running progress display; [`Progress::finish`] stops it.
pub struct Progress {
    bar: ProgressBar,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Start showing progress of `run` (hidden unless `enabled` and stderr
    /// is a terminal).
    pub fn start(run: Arc<RunStats>, duration_secs: f64, enabled: bool) -> Self {
        let len = (duration_secs.ceil() as u64).max(1);
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        if !(enabled && std::io::stderr().is_terminal()) {
            bar.set_draw_target(ProgressDrawTarget::hidden());
            return Self { bar, ticker: None };
        }
        let style = ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len}s {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        let b = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                b.set_position(run.start.elapsed().as_secs().min(len));
                b.set_message(summary_line(&run));
            }
        });
        Self { bar, ticker: Some(ticker) }
    }

    /// Stop and clear the display.
    pub fn finish(self) {
        if let Some(t) = self.ticker {
            t.abort();
        }
        self.bar.finish_and_clear();
    }
}

/// One line of running totals.
pub fn summary_line(run: &RunStats) -> String {
    let agents: u64 = run.groups.iter().map(|g| g.agents).sum();
    format!(
        "agents {}/{} done | req {} ok {} refused {} err {} | deploys {}/{} | accounts {} claimed {}",
        run.total(|g| &g.agents_finished),
        agents,
        run.total(|g| &g.requests),
        run.total(|g| &g.admitted),
        run.total(|g| &g.refused),
        run.total(|g| &g.errors),
        run.total(|g| &g.deploys_completed),
        run.total(|g| &g.deploys_attempted),
        run.total(|g| &g.accounts_created),
        run.groups.iter().map(|g| get(&g.accounts_claimed)).sum::<u64>(),
    )
}
