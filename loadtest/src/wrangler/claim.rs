//! Claiming an account through its claim URL, as a person would.

use reqwest::Method;

use super::{Account, Session, StepError};
use crate::loopback::check_loopback_url;
use crate::protocol::{Body, Call};
use crate::stats::GroupStats;

impl Session<'_> {
    /// Claim the account through its claim URL, as a person would from a
    /// browser. Only loopback claim URLs are followed.
    pub async fn claim(&mut self, acct: &mut Account) -> Result<(), StepError> {
        let group = self.group();
        GroupStats::bump(&group.claims_attempted);
        let Some(url) = acct.claim_url.clone() else {
            return Err(StepError::Failed("claim: account came without a claim URL".into()));
        };
        let url = check_loopback_url(&url).map_err(|_| {
            StepError::Failed("claim: claim URL is not on loopback; not following it".into())
        })?;
        let mut ident = self.ident.clone();
        ident.extra.retain(|(k, _)| k != reqwest::header::ACCEPT);
        ident.extra.push((
            reqwest::header::ACCEPT,
            reqwest::header::HeaderValue::from_static("application/json"),
        ));
        ident.wrangler_ua = "Mozilla/5.0 (X11; Linux x86_64) loadtest-claim".into();
        let call = Call {
            method: Method::POST,
            url,
            body: Body::Empty,
            provisioning: false,
            bearer: None,
        };
        let reply = self.api.send(&ident, &call).await?;
        let reply = Self::expect_ok("claim", reply)?;
        if reply.body["claimed"].as_bool() == Some(false) {
            return Err(StepError::Failed("claim: platform said not claimed".into()));
        }
        acct.claimed = true;
        GroupStats::bump(&group.accounts_claimed);
        group.mark_claimed(&acct.id);
        Ok(())
    }
}
