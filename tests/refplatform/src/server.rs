//! HTTP wiring: the router, request logging, and running the platform as
//! a server (in-process or from the binary).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::accounts::{D1Database, HyperdriveConfig, KvNamespace, Queue};
use crate::clock::Clock;
use crate::config::PlatformConfig;
use crate::envelope::{ApiError, CODE_NO_ROUTE};
use crate::platform::RequestRecord;
use crate::{claim, internal, provisioning, resources, sweeper, workers, Platform};

/// Path of a request as it may be logged: no query, and no claim secret.
fn loggable_path(path: &str) -> String {
    if path.starts_with("/claim/") {
        "/claim/{redacted}".to_string()
    } else {
        path.to_string()
    }
}

async fn log_requests(State(p): State<Arc<Platform>>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = loggable_path(req.uri().path());
    let res = next.run(req).await;
    let status = res.status().as_u16();
    tracing::info!(%method, %path, status, "api call");
    p.record_request(RequestRecord { method, path, status });
    res
}

/// Unknown routes are logged loudly so a new wrangler call shows up at
/// once, and answered with a v4 404 so the client fails legibly.
async fn fallback(req: Request) -> Response {
    let path = loggable_path(req.uri().path());
    tracing::warn!(method = %req.method(), %path, "UNKNOWN ROUTE (not emulated)");
    ApiError::new(
        StatusCode::NOT_FOUND,
        CODE_NO_ROUTE,
        format!("No route for that URI: {} {}", req.method(), path),
    )
    .into_response()
}

impl Platform {
    /// The full HTTP API of the platform.
    pub fn router(self: &Arc<Self>) -> Router {
        let acct = "/client/v4/accounts/{account}";
        let script = format!("{acct}/workers/scripts/{{script}}");
        // `settings` and `script-settings` are two names for one thing.
        let settings = get(workers::get_settings).patch(workers::patch_settings);
        Router::new()
            .route("/client/v4/provisioning/previews/challenge", post(provisioning::challenge))
            .route("/client/v4/provisioning/previews", post(provisioning::create))
            .route(acct, axum::routing::delete(internal::self_delete))
            .route(&format!("{acct}/workers/services/{{script}}"), get(workers::get_service))
            .route(
                &format!("{acct}/workers/subdomain"),
                get(workers::get_account_subdomain).put(workers::put_account_subdomain),
            )
            .route(&format!("{acct}/workers/scripts"), get(workers::list_scripts))
            .route(
                &script,
                get(workers::get_script).put(workers::put_script).delete(workers::delete_script),
            )
            .route(
                &format!("{script}/deployments"),
                get(workers::list_deployments).post(workers::create_deployment),
            )
            .route(
                &format!("{script}/versions"),
                get(workers::list_versions).post(workers::create_version),
            )
            .route(&format!("{script}/versions/{{version}}"), get(workers::get_version))
            .route(&format!("{script}/settings"), settings.clone())
            .route(&format!("{script}/script-settings"), settings)
            .route(
                &format!("{script}/subdomain"),
                get(workers::get_script_subdomain).post(workers::post_script_subdomain),
            )
            .route(&format!("{script}/secrets"), get(workers::list_secrets))
            .route(&format!("{script}/assets-upload-session"), post(resources::assets_session))
            .route(&format!("{acct}/workers/assets/upload"), post(resources::assets_upload))
            .route(&format!("{acct}/workers/workers/{{script}}"), get(workers::get_worker))
            .merge(resources::routes::<KvNamespace>(acct))
            .merge(resources::routes::<D1Database>(acct))
            .merge(resources::routes::<Queue>(acct))
            .merge(resources::routes::<HyperdriveConfig>(acct))
            .route("/claim/{secret}", get(claim::page).post(claim::submit))
            .route("/internal/accounts", get(internal::list))
            .route("/internal/accounts/{id}", get(internal::get).delete(internal::delete))
            .fallback(fallback)
            .layer(DefaultBodyLimit::max(self.config.max_body_bytes))
            .layer(middleware::from_fn_with_state(self.clone(), log_requests))
            .with_state(self.clone())
    }
}

/// A platform serving HTTP in the background.
#[derive(Debug)]
pub struct RunningPlatform {
    addr: SocketAddr,
    platform: Arc<Platform>,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
    sweeper: JoinHandle<()>,
}

impl RunningPlatform {
    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The platform, for inspection and direct calls (`sweep`, ...).
    pub fn platform(&self) -> Arc<Platform> {
        self.platform.clone()
    }

    /// `http://{addr}/client/v4`, what `CLOUDFLARE_API_BASE_URL` should be.
    pub fn api_base_url(&self) -> String {
        format!("http://{}/client/v4", self.addr)
    }

    /// Stop accepting connections, let in-flight requests finish, and stop
    /// the sweeper.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.sweeper.abort();
        if let Err(e) = (&mut self.server).await {
            if !e.is_cancelled() {
                tracing::warn!(error = %e, "platform server task failed");
            }
        }
    }
}

/// Bind `addr`, serve the platform there, and run the sweeper every
/// `config.sweep_interval`. Must be called inside a tokio runtime.
/// `public_base_url` defaults to `http://{bound addr}`.
pub async fn spawn(
    config: PlatformConfig,
    clock: Arc<dyn Clock>,
    addr: SocketAddr,
) -> std::io::Result<RunningPlatform> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let fixed_base = config.public_base_url.clone();
    let interval = config.sweep_interval;
    let platform = Platform::new(config, clock);
    if fixed_base.is_none() {
        platform.set_public_base_url(&format!("http://{addr}"));
    }
    let app = platform.router();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let res = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = res {
            tracing::error!(error = %e, "platform server stopped with an error");
        }
    });
    let sweeper = sweeper::spawn_sweeper(platform.clone(), interval);
    tracing::info!(%addr, "reference platform listening");
    Ok(RunningPlatform { addr, platform, shutdown: Some(tx), server, sweeper })
}
