//! Fleet mode: state shared by every gateway through Redis (`[store] redis`).
//!
//! [`conn`] holds the connection (one server or a Redis Cluster) and its health; the
//! modules beside it keep each kind of shared state.

pub mod conn;
pub mod health;
pub mod limits;
pub mod over_limit;
