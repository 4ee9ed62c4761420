//! How the candidate's decisions differ from the recorded ones: totals, per rule, per
//! source, as text for people and as JSON (`--json`, a stable shape) for scripts.

use std::collections::BTreeMap;

use serde::Serialize;

use super::parse::LineError;
use super::run::Judged;

/// Shape version of the JSON report; bumped when a field changes meaning.
pub const JSON_VERSION: u32 = 1;

/// Allowed and refused counts of one side.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Forwarded.
    pub allowed: u64,
    /// Refused.
    pub refused: u64,
}

/// The changes of one rule (or check).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct RuleRow {
    /// Rule name, or the check (`budget`, `framing`, …).
    pub rule: String,
    /// Refusals by it in the recording.
    pub recorded_refused: u64,
    /// Refusals by it under the candidate.
    pub candidate_refused: u64,
    /// Requests the recording allowed that it refuses under the candidate.
    pub allow_to_refuse: u64,
    /// Requests it refused in the recording that the candidate allows.
    pub refuse_to_allow: u64,
}

/// The changes for one client address.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct SourceRow {
    /// The client address.
    pub source: String,
    /// Requests from it.
    pub requests: u64,
    /// Allowed then, refused now.
    pub allow_to_refuse: u64,
    /// Refused then, allowed now.
    pub refuse_to_allow: u64,
}

/// The comparison.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Report {
    /// [`JSON_VERSION`].
    pub version: u32,
    /// Lines in the log.
    pub lines: usize,
    /// Lines skipped (see `errors`).
    pub skipped: usize,
    /// Requests read.
    pub requests: u64,
    /// Requests the candidate's engine judged (the rest kept their recorded outcome:
    /// refused by framing, or a non-canonical path).
    pub replayed: u64,
    /// Seconds between the first and the last request.
    pub span_secs: f64,
    /// The recording.
    pub recorded: Counts,
    /// The candidate.
    pub candidate: Counts,
    /// Allowed then, refused now.
    pub allow_to_refuse: u64,
    /// Refused then, allowed now.
    pub refuse_to_allow: u64,
    /// Refused both times, by a different rule.
    pub refused_by_another_rule: u64,
    /// Every rule or check that refused on either side, by name.
    pub rules: Vec<RuleRow>,
    /// The sources with the most changes, most first.
    pub sources: Vec<SourceRow>,
    /// The skipped lines, located.
    pub errors: Vec<ReportedError>,
}

/// A skipped line in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportedError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Sums up `judged`; keeps the `top` sources with the most changes.
pub fn summarize(judged: &[Judged], lines: usize, errors: &[LineError], top: usize) -> Report {
    let mut report = Report {
        version: JSON_VERSION,
        lines,
        skipped: errors.len(),
        errors: errors
            .iter()
            .map(|e| ReportedError { line: e.line, message: e.message.clone() })
            .collect(),
        ..Report::default()
    };
    let mut rules: BTreeMap<String, RuleRow> = BTreeMap::new();
    let mut sources: BTreeMap<String, SourceRow> = BTreeMap::new();
    for j in judged {
        report.requests += 1;
        report.replayed += u64::from(j.replayed);
        count(&mut report.recorded, j.recorded.refused);
        count(&mut report.candidate, j.candidate.refused);
        let source = sources.entry(j.request.client.to_string()).or_insert_with(|| SourceRow {
            source: j.request.client.to_string(),
            ..SourceRow::default()
        });
        source.requests += 1;
        if let Some(by) = &j.recorded.by {
            rules.entry(by.clone()).or_insert_with(|| named(by)).recorded_refused += 1;
        }
        if let Some(by) = &j.candidate.by {
            rules.entry(by.clone()).or_insert_with(|| named(by)).candidate_refused += 1;
        }
        match (&j.recorded.by, &j.candidate.by) {
            (None, Some(now)) => {
                report.allow_to_refuse += 1;
                source.allow_to_refuse += 1;
                rules.entry(now.clone()).or_insert_with(|| named(now)).allow_to_refuse += 1;
            }
            (Some(then), None) => {
                report.refuse_to_allow += 1;
                source.refuse_to_allow += 1;
                rules.entry(then.clone()).or_insert_with(|| named(then)).refuse_to_allow += 1;
            }
            (Some(then), Some(now)) if then != now => report.refused_by_another_rule += 1,
            _ => {}
        }
    }
    if let (Some(first), Some(last)) =
        (judged.iter().map(|j| j.request.at_us).min(), judged.iter().map(|j| j.request.at_us).max())
    {
        report.span_secs = (last - first) as f64 / 1e6;
    }
    report.rules = rules.into_values().collect();
    let mut changed: Vec<SourceRow> =
        sources.into_values().filter(|s| s.allow_to_refuse + s.refuse_to_allow > 0).collect();
    changed.sort_by(|a, b| {
        (b.allow_to_refuse + b.refuse_to_allow)
            .cmp(&(a.allow_to_refuse + a.refuse_to_allow))
            .then_with(|| a.source.cmp(&b.source))
    });
    changed.truncate(top);
    report.sources = changed;
    report
}

fn named(name: &str) -> RuleRow {
    RuleRow { rule: name.into(), ..RuleRow::default() }
}

fn count(c: &mut Counts, refused: bool) {
    if refused {
        c.refused += 1;
    } else {
        c.allowed += 1;
    }
}

impl Report {
    /// Whether any decision differs.
    pub fn differs(&self) -> bool {
        self.allow_to_refuse + self.refuse_to_allow + self.refused_by_another_rule > 0
    }

    /// The report as JSON (the `--json` output).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The report for people.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "replayed {} of {} requests over {:.1}s ({} lines, {} skipped)\n",
            self.replayed, self.requests, self.span_secs, self.lines, self.skipped
        );
        out.push_str(&format!(
            "            recorded  candidate\nallowed   {:>10} {:>10}\nrefused   {:>10} {:>10}\n",
            self.recorded.allowed,
            self.candidate.allowed,
            self.recorded.refused,
            self.candidate.refused
        ));
        if !self.differs() {
            out.push_str("no decision differs\n");
            return out;
        }
        out.push_str(&format!(
            "changed: {} allow->refuse, {} refuse->allow, {} refused by another rule\n\n",
            self.allow_to_refuse, self.refuse_to_allow, self.refused_by_another_rule
        ));
        out.push_str(&format!(
            "{:<32} {:>9} {:>9} {:>13} {:>13}\n",
            "rule", "refused", "now", "allow->refuse", "refuse->allow"
        ));
        for r in &self.rules {
            out.push_str(&format!(
                "{:<32} {:>9} {:>9} {:>13} {:>13}\n",
                r.rule,
                r.recorded_refused,
                r.candidate_refused,
                r.allow_to_refuse,
                r.refuse_to_allow
            ));
        }
        out.push_str(&format!(
            "\n{:<40} {:>9} {:>13} {:>13}\n",
            "source", "requests", "allow->refuse", "refuse->allow"
        ));
        for s in &self.sources {
            out.push_str(&format!(
                "{:<40} {:>9} {:>13} {:>13}\n",
                s.source, s.requests, s.allow_to_refuse, s.refuse_to_allow
            ));
        }
        out
    }
}
