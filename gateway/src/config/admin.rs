//! `[admin]`: the admin listener, its credentials and the ledger's files.
//!
//! Three credentials, each for one caller: `token` (operators: every admin call but
//! the platform's events), `events_secret` (the platform signs its events with it)
//! and `status_token` (the gateway's bearer at the platform's account-status API).
//! An admin listener reachable from other machines must have a token.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::raw::RawAdmin;
use super::{AdminSettings, ConfigError};
use crate::operator::auth::MIN_TOKEN_CHARS;

/// The environment variable that gives the admin token (it wins over `[admin] token`,
/// so a secret store can inject it without writing it into the file).
pub const ADMIN_TOKEN_ENV: &str = "GATEWAY_ADMIN_TOKEN";

/// Shortest `events_secret` and `status_token`.
const MIN_SECRET_CHARS: usize = 16;

fn check_len(
    value: &Option<Spanned<String>>,
    name: &str,
    err_at: &dyn Fn(usize, String) -> ConfigError,
) -> Result<Option<String>, ConfigError> {
    match value {
        Some(v) if v.get_ref().chars().count() < MIN_SECRET_CHARS.max(MIN_TOKEN_CHARS) => {
            Err(err_at(v.span().start, format!("admin.{name} must be at least 16 characters")))
        }
        Some(v) => Ok(Some(v.get_ref().clone())),
        None => Ok(None),
    }
}

/// Checks `[admin]`; `env_token` is [`ADMIN_TOKEN_ENV`]'s value, if set.
pub(super) fn compile_admin(
    a: RawAdmin,
    env_token: Option<String>,
    err_at: &dyn Fn(usize, String) -> ConfigError,
) -> Result<AdminSettings, ConfigError> {
    let at = a.listen.span().start;
    let listen = a.listen.get_ref().parse::<SocketAddr>().map_err(|_| {
        err_at(at, format!("admin.listen \"{}\" is not IP:PORT", a.listen.get_ref()))
    })?;
    let events_secret = check_len(&a.events_secret, "events_secret", err_at)?;
    let status_token = check_len(&a.status_token, "status_token", err_at)?;
    let file_token = check_len(&a.token, "token", err_at)?;
    let token = match env_token {
        Some(t) if t.chars().count() < MIN_TOKEN_CHARS => {
            return Err(err_at(at, format!("{ADMIN_TOKEN_ENV} must be at least 16 characters")))
        }
        Some(t) => Some(t),
        None => file_token,
    };
    if token.is_none() && !listen.ip().is_loopback() {
        return Err(err_at(
            at,
            format!(
                "admin.listen {listen} is reachable from other machines and the admin API has no \
                 token: set admin.token (at least 16 characters) or {ADMIN_TOKEN_ENV}, or listen \
                 on 127.0.0.1"
            ),
        ));
    }
    if let (Some(token), Some(secret)) = (&token, &events_secret) {
        if token == secret {
            return Err(err_at(
                at,
                "the admin token must differ from admin.events_secret: each credential has \
                 one caller"
                    .into(),
            ));
        }
    }
    let reconcile_url = match a.reconcile_url {
        Some(url) if status_token.is_none() => {
            return Err(err_at(
                url.span().start,
                "admin.reconcile_url needs admin.status_token: the bearer token of the \
                 platform's account-status API"
                    .into(),
            ))
        }
        Some(url) => Some(url.into_inner()),
        None => None,
    };
    let reconcile_interval = match &a.reconcile_interval_secs {
        Some(v) if *v.get_ref() == 0 => {
            return Err(err_at(
                v.span().start,
                "admin.reconcile_interval_secs must be above 0".into(),
            ))
        }
        Some(v) => Duration::from_secs(*v.get_ref()),
        None => Duration::from_secs(30),
    };
    Ok(AdminSettings {
        reconcile_url,
        reconcile_interval,
        listen,
        events_secret,
        token,
        status_token,
        ledger_file: a.ledger_file.map(PathBuf::from),
        accounts_file: a.accounts_file.map(PathBuf::from),
        silent_expiry_grace: Duration::from_secs(a.silent_expiry_grace_secs.unwrap_or(600)),
    })
}
