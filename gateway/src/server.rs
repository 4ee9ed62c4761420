//! Builds and runs the Pingora server from a [`GatewayConfig`].

use std::net::TcpListener;
use std::sync::Arc;

use pingora::proxy::http_proxy_service;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};

use crate::config::GatewayConfig;
use crate::enforce::Enforcer;
use crate::inflight::InFlight;
use crate::proxy::DeployGateway;
use crate::shutdown::DrainingShutdown;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listen address is taken or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A TLS listener's certificate or key cannot be used.
    #[error("TLS listener {addr}: {message}")]
    Tls {
        /// The listener.
        addr: std::net::SocketAddr,
        /// What is wrong with its files.
        message: String,
    },
}

/// Checks that every listen address can be bound, so a taken port is a clear error
/// instead of a panic deep inside Pingora's listener setup.
pub fn check_listeners(config: &GatewayConfig) -> Result<(), StartError> {
    for addr in config.listen.iter().chain(config.tls.iter().map(|t| &t.listen)) {
        TcpListener::bind(addr).map_err(|source| StartError::Listen { addr: *addr, source })?;
    }
    Ok(())
}

/// Runs the gateway until SIGTERM/SIGINT, then drains within the grace period.
pub fn run(config: &GatewayConfig, enforcer: Arc<Enforcer>) -> Result<(), StartError> {
    check_listeners(config)?;
    if let Some(tracker) = enforcer.tracker() {
        tracker.held().set_limit(config.max_held_body_bytes);
    }
    let conf = ServerConf {
        threads: config.threads,
        // The gateway drains in-flight requests itself (see `shutdown`).
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        upstream_keepalive_pool_size: 512,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let in_flight = InFlight::default();
    let gateway = DeployGateway::new(&config.upstream, enforcer, in_flight.clone());
    let mut service = http_proxy_service(&server.configuration, gateway);
    for addr in &config.listen {
        service.add_tcp(&addr.to_string());
    }
    for tls in &config.tls {
        let settings = crate::tls::settings(tls)
            .map_err(|message| StartError::Tls { addr: tls.listen, message })?;
        service.add_tls_with_settings(&tls.listen.to_string(), None, settings);
    }
    if !config.tls.is_empty() {
        // Runs on TLS endpoints only: reads the ClientHello for JA4, then rewinds.
        service.endpoints().set_pre_tls_callback(crate::tls::hook());
    }
    server.add_service(service);
    tracing::info!(listen = ?config.listen, upstream = %config.upstream.addr, "gateway listening");
    server.run(RunArgs {
        shutdown_signal: Box::new(DrainingShutdown { in_flight, grace: config.grace_period }),
    });
    Ok(())
}
