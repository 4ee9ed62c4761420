//! What one agent runs with, shared by the ordinary deploy loop ([`crate::agent`]) and
//! the attack loops ([`crate::attack`]), which the deploy loop hands attack agents to.

use std::sync::Arc;

use crate::archetype::Behaviour;
use crate::protocol::Api;
use crate::wrangler::PowSettings;

/// Everything one agent needs.
pub struct AgentCtx {
    /// Global agent number (for addresses and names).
    pub index: u64,
    /// Its group's behaviour.
    pub behaviour: Arc<Behaviour>,
    /// Connection to the target.
    pub api: Api,
    /// Proof-of-work settings of the run.
    pub pow: Arc<PowSettings>,
    /// Seed for this agent's randomness.
    pub seed: u64,
    /// The agent's number inside its group (0 for the first to arrive).
    pub member: u64,
}
