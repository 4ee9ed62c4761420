//! The summary table printed at the end of a run.

use super::group::percent;
use super::Report;

impl Report {
    /// The summary table, as printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "scenario {} | {} | {:.1}s ({}) | {:.1} req/s | latency p50 {:.2} ms p99 {:.2} ms\n\n",
            self.scenario,
            self.target,
            self.elapsed_secs,
            self.stopped_by,
            self.totals.requests_per_sec,
            self.totals.latency.p50_ms,
            self.totals.latency.p99_ms,
        ));
        let header = [
            "group",
            "agents",
            "requests",
            "admitted",
            "refused",
            "errors",
            "deploys",
            "done %",
            "accounts",
            "claimed",
            "expired",
            "resources",
            "cleanup*",
            "worst key debt/budget",
        ];
        let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
        for g in &self.groups {
            let c = &g.cleanup;
            rows.push(vec![
                g.label.clone(),
                g.agents.to_string(),
                g.requests.to_string(),
                g.admitted.to_string(),
                g.refused.to_string(),
                g.errors.to_string(),
                format!("{}/{}", g.deploys_completed, g.deploys_wanted),
                format!("{:.1}", g.completion_pct),
                g.accounts_created.to_string(),
                g.accounts_claimed.to_string(),
                if c.basis == "ledger" {
                    c.accounts_expired_unclaimed.to_string()
                } else {
                    "-".into()
                },
                format!("{}/{}", g.resources_created, g.resources_created + g.resources_refused),
                format!("{:.0}", c.cleanup_units),
                match &c.worst_key {
                    Some(k) => format!(
                        "{}/{} {}{}",
                        k.debt,
                        k.refuse_at,
                        key_short(&k.key),
                        if k.within { "" } else { " OVER" }
                    ),
                    None => "-".into(),
                },
            ]);
        }
        let t = &self.totals;
        let res_ok: u64 = self.groups.iter().map(|g| g.resources_created).sum();
        let res_no: u64 = self.groups.iter().map(|g| g.resources_refused).sum();
        let expired: u64 = self.groups.iter().map(|g| g.cleanup.accounts_expired_unclaimed).sum();
        rows.push(vec![
            "TOTAL".to_string(),
            self.groups.iter().map(|g| g.agents).sum::<u64>().to_string(),
            t.requests.to_string(),
            t.admitted.to_string(),
            t.refused.to_string(),
            t.errors.to_string(),
            format!("{}/{}", t.deploys_completed, t.deploys_wanted),
            format!("{:.1}", percent(t.deploys_completed, t.deploys_wanted)),
            t.accounts_created.to_string(),
            t.accounts_claimed.to_string(),
            expired.to_string(),
            format!("{res_ok}/{}", res_ok + res_no),
            format!("{:.0}", t.cleanup_units),
            String::new(),
        ]);
        let widths: Vec<usize> =
            (0..header.len()).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
        for (i, r) in rows.iter().enumerate() {
            let cells: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(c, v)| {
                    if c == 0 || c + 1 == header.len() {
                        format!("{v:<w$}", w = widths[c])
                    } else {
                        format!("{v:>w$}", w = widths[c])
                    }
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
            if i == 0 || i + 2 == rows.len() {
                out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
                out.push('\n');
            }
        }
        out.push_str(&format!("\n* cleanup units: {}\n", self.cleanup_cost_basis));
        out.push_str("  deploys: completed/wanted by the agents that started; expired: accounts charged as expired unclaimed;\n  worst key: the budgeted source key of the group nearest its refuse budget (debt/budget, units)\n");
        if let Some(l) = &self.ledger {
            if let Some(e) = &l.error {
                out.push_str(&format!("  ledger: {e}\n"));
            }
            let unsettled: u64 = self.groups.iter().map(|g| g.cleanup.accounts_unsettled).sum();
            if l.error.is_none() {
                out.push_str(&format!(
                    "  ledger: {} entries read after {:.1} s of settling; {} accounts not charged yet (still live)\n",
                    l.entries, l.settle_secs, unsettled
                ));
            }
        }
        out.push('\n');
        for g in &self.groups {
            if !g.refusal_reasons.is_empty() {
                let mut reasons: Vec<(&String, &u64)> = g.refusal_reasons.iter().collect();
                reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                out.push_str(&format!("refusals of {}:\n", g.label));
                for (r, n) in reasons.iter().take(4) {
                    out.push_str(&format!("  {n:>6}  {r}\n"));
                }
            }
        }
        for g in &self.groups {
            if !g.error_samples.is_empty() {
                out.push_str(&format!(
                    "errors seen by {}: {}\n",
                    g.label,
                    g.error_samples.join("; ")
                ));
            }
        }
        out.push('\n');
        out.push_str(&self.acceptance_text());
        out
    }
}

/// A source key short enough for a table cell.
fn key_short(key: &str) -> String {
    if key.chars().count() <= 32 {
        key.to_string()
    } else {
        let cut: String = key.chars().take(31).collect();
        format!("{cut}~")
    }
}
