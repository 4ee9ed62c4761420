//! Recall: in a fleet, the account behind a bearer token this gateway's book does not
//! know, looked up in the fleet's store before any check reads the book.
//!
//! A client may take the token it got through gateway A straight to gateway B (an
//! account's API token, or an asset-upload session's). A writes it to Redis before
//! the answer that carries it leaves, so B finds it
//! here (async, awaited in `request_filter` before the synchronous checks of
//! [`super::decide`]), enters it into its own book and keeps it. A store that cannot
//! be reached finds nothing: the request goes on judged by the local book alone.

use pingora::http::RequestHeader;

use super::identify::bearer_token;
use crate::enforce::Enforcer;
use crate::fleet::accounts::Recalled;

/// Enters the account of `req`'s bearer token into the book when only the fleet
/// knows it.
pub async fn recall(enforcer: &Enforcer, req: &RequestHeader) {
    let Some(tracker) = enforcer.tracker() else { return };
    let Some(fleet) = tracker.fleet() else { return };
    let Some(token) = bearer_token(req) else { return };
    let hash = tracker.hash_token(token);
    if tracker.account_for(&hash).is_some() || !fleet.accounts.worth_asking(&hash) {
        return;
    }
    match fleet.accounts.lookup_token(&hash).await {
        Ok(Some(Recalled::Account(account))) => {
            account.remember(tracker.book());
            tracing::debug!(account = %account.record.account_id, "account recalled from the fleet store");
        }
        Ok(Some(Recalled::Session(session, account))) => {
            account.remember(tracker.book());
            let declared = std::sync::Arc::new(session.declared);
            tracker.uploads().record(hash, &session.account_id, declared, session.opened_at);
            tracing::debug!(account = %session.account_id, "upload session recalled from the fleet store");
        }
        Ok(None) => fleet.accounts.note_miss(hash),
        Err(e) => tracing::debug!(error = %e, "cannot look the token up in the fleet store"),
    }
}
