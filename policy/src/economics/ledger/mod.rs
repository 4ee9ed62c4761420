//! The cleanup-cost ledger: who made the platform pay for cleaning up unclaimed
//! temporary accounts, and cleanup budgets per source.
//!
//! Every unclaimed account is deleted by the platform after its hour, and that cleanup
//! is work the platform pays for. Rate limits alone cannot tell a developer who claims
//! their deploys from a farm that creates accounts and walks away, but the ledger can:
//! when an account expires unclaimed its cleanup cost (from what it held at the end)
//! is charged to *every* source key that created it (address, each network, each
//! fingerprint), and a claim earns the source credit. Budgets then bound how much
//! unclaimed cleanup a network may cause per window.
//!
//! Entries are append-only and hold no token or claim URL, so the ledger file can be
//! shared with whoever investigates abuse. Time is passed in (unix seconds).

mod book;
mod budgets;

pub use book::{BudgetBreach, Ledger, LedgerEntry, LedgerLoadError, Reason};
pub use budgets::{BudgetAction, BudgetRule, Budgets, Costs, GlobalBudget};
