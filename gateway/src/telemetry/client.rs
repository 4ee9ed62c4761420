//! The OTLP exporters' HTTP client: reqwest on a small tokio runtime of its own.
//!
//! The SDK's batch span processor and periodic metric reader export from threads of
//! their own with a plain executor, where reqwest's async client (which needs a tokio
//! reactor) cannot run. Each export is spawned onto this runtime and awaited from
//! there, so neither the exporters' threads nor Pingora's runtimes do network work
//! for telemetry.

use bytes::Bytes;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};

/// Sends OTLP bodies with reqwest on `runtime`.
#[derive(Debug, Clone)]
pub struct RuntimeClient {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl RuntimeClient {
    /// A client whose requests run on a new one-thread runtime (thread `telemetry`)
    /// and time out after `timeout`.
    pub fn start(timeout: std::time::Duration) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the telemetry runtime: {e}"))?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("telemetry".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .map_err(|e| format!("cannot start the telemetry runtime: {e}"))?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the telemetry HTTP client: {e}"))?;
        Ok(RuntimeClient { http, runtime: handle })
    }
}

#[async_trait::async_trait]
impl HttpClient for RuntimeClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let http = self.http.clone();
        let sent = self.runtime.spawn(async move {
            let answer = http.execute(request).await?;
            let status = answer.status();
            let body = answer.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        });
        let (status, body) = sent.await??;
        Ok(Response::builder().status(status.as_u16()).body(body)?)
    }
}
