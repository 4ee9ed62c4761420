//! The one signature every check of [`super::decide`] has, and what it reads.

use std::sync::Arc;

use pingora::http::RequestHeader;
use policy::{Engine, Identity, Policy};

use super::context::RequestCtx;
use super::refusal::Refusal;
use crate::tracker::Tracker;

/// What every check reads.
pub struct Checked<'a> {
    /// The request's header (for its framing headers).
    pub req: &'a RequestHeader,
    /// The temporary account behind the bearer token, when the gateway made it.
    pub account: Option<&'a policy::accounts::AccountInfo>,
    /// Who sent it, derived once.
    pub id: &'a Identity<'a>,
    /// The policy in force.
    pub policy: &'a Policy,
    /// The rate-limit engine.
    pub engine: &'a Engine,
    /// Accounts, quotas, ledger.
    pub tracker: &'a Arc<Tracker>,
    /// Unix seconds now.
    pub now: u64,
}

/// One check: `Ok` lets the request on, `Err` refuses it.
pub type Check = fn(&Checked<'_>, &mut RequestCtx) -> Result<(), Refusal>;
