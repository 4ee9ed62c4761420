//! Fleet mode: state shared by every gateway through Redis (`[store] redis`).
//!
//! [`conn`] holds the connection (one server or a Redis Cluster) and its health; the
//! modules beside it keep each kind of shared state.

pub mod accounts;
pub mod conn;
pub mod health;
pub mod join;
pub mod ledger;
pub mod limits;
pub mod member;
pub mod outbox;
pub mod over_limit;
pub mod usage;
pub mod wait;
