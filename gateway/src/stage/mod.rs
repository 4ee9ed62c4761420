//! The stages of one request, one module each, in the order they run.
//!
//! | stage | module | runs in (Pingora phase) |
//! | --- | --- | --- |
//! | what the stages share | [`context`] | every phase (`CTX`) |
//! | in a fleet, the account only the shared store knows | [`recall`] | `request_filter`, first (async) |
//! | rate limits decided in the fleet's Redis | [`fleet_limits`] | `request_filter`, before `decide` (async) |
//! | who sent it | [`identify`] | `request_filter` |
//! | the operator's blocks, first check | [`block`] | `request_filter` |
//! | every check before forwarding | [`decide`] | `request_filter` |
//! | the shared creation ceiling, last check | [`fair_share`] | `request_filter` |
//! | one refusal type, status and code | [`refusal`] | wherever a check refuses |
//! | bodies a check must see whole | [`body`] | `request_body_filter`, `upstream_request_filter` |
//! | body framing and size, held bytes, asset files' real sizes | [`limits`] | `request_filter`, `request_body_filter` |
//! | the quota a call holds until answered | [`reserve`] | from `decide` to `learn` (or the end of the request) |
//! | what the answers teach | [`learn`] | `response_filter`, `response_body_filter` |
//! | decision counters of the admin API | [`tally`] | `request_filter`, after the checks |
//! | what was decided, for the access and audit logs | [`verdict`] | `request_filter`, `fail_to_proxy` |
//!
//! [`crate::proxy`] only dispatches to these; [`crate::respond`] writes what they
//! decide.

pub mod block;
pub mod body;
pub mod check;
pub mod context;
pub mod decide;
pub mod fair_share;
pub mod fleet_limits;
pub mod identify;
pub mod learn;
pub mod limits;
pub mod recall;
pub mod refusal;
pub mod reserve;
pub mod tally;
pub mod verdict;
