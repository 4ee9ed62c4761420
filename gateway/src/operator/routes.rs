//! The admin router's table: every route with its method and who may call it.
//!
//! Routes are added through [`Routes`] so the list of what the router serves exists
//! as data: the OpenAPI file (`gateway/openapi.yaml`) is tested against it both
//! ways, and the unauthenticated-call test walks it.

use std::sync::Arc;

use axum::handler::Handler;
use axum::routing::{delete, get, post};
use axum::Router;

use super::auth::{require_token, AdminToken};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Operators, with the admin bearer token.
    Token,
    /// Anyone who reaches the listener: the dashboard's static files (no data in
    /// them) and the platform's events (authenticated by their HMAC signature).
    Public,
}

/// One served route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// `GET`, `POST` or `DELETE`.
    pub method: &'static str,
    /// The path.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

/// Builds the admin router and its table together.
pub struct Routes<S> {
    token: Router<S>,
    public: Router<S>,
    list: Vec<RouteInfo>,
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Routes { token: Router::new(), public: Router::new(), list: Vec::new() }
    }
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    fn add(
        mut self,
        method: &'static str,
        path: &'static str,
        access: Access,
        route: axum::routing::MethodRouter<S>,
    ) -> Self {
        self.list.push(RouteInfo { method, path, access });
        match access {
            Access::Token => self.token = self.token.route(path, route),
            Access::Public => self.public = self.public.route(path, route),
        }
        self
    }

    /// A `GET` route.
    pub fn get<H: Handler<T, S>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        h: H,
    ) -> Self {
        self.add("GET", path, access, get(h))
    }

    /// A `POST` route.
    pub fn post<H: Handler<T, S>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        h: H,
    ) -> Self {
        self.add("POST", path, access, post(h))
    }

    /// A `DELETE` route.
    pub fn delete<H: Handler<T, S>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        h: H,
    ) -> Self {
        self.add("DELETE", path, access, delete(h))
    }

    /// The router (operator routes behind the token) and the table of what it serves.
    /// A path may appear once per method; two methods of one path are merged.
    pub fn finish(self, token: Arc<AdminToken>) -> (Router<S>, Vec<RouteInfo>) {
        let guarded =
            self.token.route_layer(axum::middleware::from_fn_with_state(token, require_token));
        (guarded.merge(self.public), self.list)
    }
}
