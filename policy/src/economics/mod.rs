//! The economics of temporary accounts: who created them, what they hold, what their
//! cleanup costs, and the proof-of-work a source in debt owes.
//!
//! Pure logic like the language half: time comes in as unix seconds, so tests move it
//! by hand. The sections that configure it are compiled by the language half into the
//! model types defined here ([`accounts::AccountLimits`], [`quota::QuotaSpec`],
//! [`ledger::Costs`], [`ledger::Budgets`], [`pow::PowPolicy`]).

pub mod accounts;
pub mod ledger;
pub mod pow;
pub mod quota;
