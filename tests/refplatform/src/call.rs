//! What every call under `/client/v4/accounts/{account}/...` starts from.
//!
//! Those handlers all need the same three things (the platform, the path
//! parameters with the account id first, and the headers that carry the
//! bearer token) and all authorize the same way. One extractor gathers
//! them, so each handler states only what differs: what it does to the
//! account.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::accounts::Account;
use crate::envelope::ApiError;
use crate::Platform;

/// Path parameters of a route under `/accounts/{account}`. The account id
/// is always the first segment, so authorization can find it whatever
/// the route names after it.
pub(crate) trait AccountPath: DeserializeOwned + Send {
    /// The `{account}` segment.
    fn account_id(&self) -> &str;
}

/// `/accounts/{account}/...` with no further parameter.
impl AccountPath for String {
    fn account_id(&self) -> &str {
        self
    }
}

/// `/accounts/{account}/.../{item}`: a script name or a resource id.
impl AccountPath for (String, String) {
    fn account_id(&self) -> &str {
        &self.0
    }
}

/// `/accounts/{account}/.../{item}/.../{sub}`: e.g. a script's version.
impl AccountPath for (String, String, String) {
    fn account_id(&self) -> &str {
        &self.0
    }
}

/// An account-scoped API call, extracted in the order the handlers used
/// to take them one by one (state, path, headers), so a malformed path is
/// rejected exactly as before and nothing is authorized yet: handlers
/// choose when to authorize, since some must parse a body first.
pub(crate) struct AccountCall<P> {
    /// The platform serving the call.
    pub(crate) platform: Arc<Platform>,
    /// The path parameters, account id first.
    pub(crate) path: P,
    /// Request headers (the bearer token lives here).
    pub(crate) headers: HeaderMap,
}

/// A call on the account itself or one of its collections.
pub(crate) type AccountRoot = AccountCall<String>;
/// A call on one named item of the account (a script, a resource).
pub(crate) type AccountItem = AccountCall<(String, String)>;

impl<P: AccountPath> FromRequestParts<Arc<Platform>> for AccountCall<P> {
    type Rejection = PathRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<Platform>,
    ) -> Result<Self, Self::Rejection> {
        let Path(path) = Path::<P>::from_request_parts(parts, state).await?;
        Ok(Self { platform: Arc::clone(state), path, headers: parts.headers.clone() })
    }
}

impl<P: AccountPath> AccountCall<P> {
    /// The account the path names.
    pub(crate) fn account_id(&self) -> &str {
        self.path.account_id()
    }

    /// Check the bearer token against the path's account (see
    /// [`Platform::authorize`]); for handlers that must authorize before
    /// reading a body but cannot hold the state lock while they read.
    pub(crate) fn authorize(&self) -> Result<(), ApiError> {
        self.platform.authorize(&self.headers, self.account_id())
    }

    /// Authorize, then run `f` on the path's account under the state lock
    /// (see [`Platform::with_account`]).
    pub(crate) fn with_account<T>(
        &self,
        f: impl FnOnce(&mut Account, OffsetDateTime) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.platform.with_account(&self.headers, self.account_id(), f)
    }
}

impl AccountItem {
    /// The item the path names after the account (script name or id).
    pub(crate) fn item(&self) -> &str {
        &self.path.1
    }
}
