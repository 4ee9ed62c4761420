//! The ledger's entries as the gateway's admin listener lists them, and
//! its per-rule counters.

use std::time::Duration;

use reqwest::Url;
use serde::Serialize;
use serde_json::Value;

/// Why a ledger entry was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The account expired unclaimed: a charge.
    ExpiredUnclaimed,
    /// The account was claimed: a credit.
    Claimed,
    /// Something this tester does not know.
    Other,
}

/// One ledger entry, as `GET /ledger/entries` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Unix seconds.
    pub at: u64,
    /// The account.
    pub account_id: String,
    /// Every key it was charged to (`ip:1.2.3.4`, `ipv4/24:1.2.3.0/24`, ...).
    pub source_keys: Vec<String>,
    /// Why.
    pub reason: Reason,
    /// Units charged (positive) or credited (negative).
    pub units: i64,
}

/// Parse the answer of `GET /ledger/entries`. Entries that do not have
/// the expected shape are skipped and counted, never fatal.
pub fn parse_entries(body: &[u8]) -> Result<(Vec<Entry>, usize), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("ledger is not JSON: {e}"))?;
    let Some(items) = v.as_array() else {
        return Err("ledger answer is not a JSON array".into());
    };
    let mut out = Vec::with_capacity(items.len());
    let mut skipped = 0;
    for item in items {
        let parsed = (|| {
            let reason = match item["reason"].as_str()? {
                "expired_unclaimed" | "ExpiredUnclaimed" => Reason::ExpiredUnclaimed,
                "claimed" | "Claimed" => Reason::Claimed,
                _ => Reason::Other,
            };
            Some(Entry {
                at: item["at"].as_u64()?,
                account_id: item["account_id"].as_str()?.to_string(),
                source_keys: item["source_keys"]
                    .as_array()?
                    .iter()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect(),
                reason,
                units: item["units"].as_i64()?,
            })
        })();
        match parsed {
            Some(e) => out.push(e),
            None => skipped += 1,
        }
    }
    Ok((out, skipped))
}

/// Fetch every ledger entry from the admin listener at `admin`.
pub async fn fetch_entries(
    client: &reqwest::Client,
    admin: &Url,
) -> Result<(Vec<Entry>, usize), String> {
    let url = admin.join("/ledger/entries").map_err(|e| format!("bad admin URL: {e}"))?;
    let resp = client
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| format!("cannot read the ledger: {}", e.without_url()))?;
    if !resp.status().is_success() {
        return Err(format!("ledger answered HTTP {}", resp.status().as_u16()));
    }
    let body =
        resp.bytes().await.map_err(|e| format!("cannot read the ledger: {}", e.without_url()))?;
    parse_entries(&body)
}

/// Fetch `GET /stats` (per-rule counters) from the admin listener.
pub async fn fetch_stats(client: &reqwest::Client, admin: &Url) -> Option<Value> {
    let url = admin.join("/stats").ok()?;
    let resp = client.get(url).timeout(Duration::from_secs(10)).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    serde_json::from_slice(&resp.bytes().await.ok()?).ok()
}

/// The kind of a source key string (`ip` of `ip:1.2.3.4`).
pub fn key_kind(key: &str) -> &str {
    key.split_once(':').map_or(key, |(k, _)| k)
}
