//! `GET /dashboard`: the operator dashboard, a page built into the binary.
//!
//! No CDN and no build step: the HTML, script and style are `include_str!`ed, and the
//! charts are drawn by the page's own script on a canvas and in SVG. The files hold no
//! data, so they are served without the token; the page then calls the admin API with
//! the token the operator gives it (URL fragment or prompt), which never reaches a
//! server log because fragments are not sent.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/app.css");

/// Headers of every dashboard file: nothing cached, nothing loaded from elsewhere.
fn answer(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

/// `GET /dashboard`.
pub async fn index() -> Response {
    answer("text/html; charset=utf-8", INDEX)
}

/// `GET /dashboard/app.js`.
pub async fn script() -> Response {
    answer("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /dashboard/app.css`.
pub async fn style() -> Response {
    answer("text/css; charset=utf-8", STYLE)
}
