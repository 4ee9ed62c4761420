//! The policy language and the rate-limit engine.
//!
//! A policy file goes raw -> compile -> model: [`raw`] is the file as written (serde
//! shapes with spans, nothing checked), [`compile`] checks every value and reports
//! `FILE:LINE:COL` errors, and [`model`] is the result, which cannot be invalid. The
//! [`engine`] only ever sees the model. The economics sections (`[accounts]`,
//! `[quotas]`, `[costs]`, `[budgets]`, `[pow]`) go the same way; their model types
//! belong to [`crate::economics`], the one thing this half takes from the other.

pub(crate) mod canonical;
pub(crate) mod client;
pub(crate) mod compile;
pub(crate) mod decision;
pub(crate) mod engine;
pub(crate) mod error;
pub(crate) mod explain;
pub(crate) mod fair_share;
pub(crate) mod fingerprint;
pub(crate) mod identity;
pub(crate) mod key;
pub(crate) mod model;
pub(crate) mod plan;
pub(crate) mod rate;
pub(crate) mod raw;
pub(crate) mod refuse;
pub(crate) mod route;
pub(crate) mod section;
pub(crate) mod snapshot;
pub(crate) mod table;
