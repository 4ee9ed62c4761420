//! Cloudflare v4 error envelopes.
//!
//! wrangler prints the first error's message to its user verbatim
//! ("Failed to create a temporary preview account (429 ...)"), so every answer the
//! gateway writes itself uses the same envelope as the API it fronts, and its message
//! must say what the user can do next.

use bytes::Bytes;

/// Error codes the gateway uses in its own envelopes. They sit in a range of their own
/// so that support staff can tell a gateway refusal from an API error at a glance.
pub mod codes {
    /// A rate limit refused the request.
    pub const RATE_LIMITED: u32 = 971;
    /// A deny list or deny rule refused the request.
    pub const DENIED: u32 = 972;
    /// A resource quota of the temporary account refused the request.
    pub const QUOTA: u32 = 973;
    /// The deploy API could not be reached.
    pub const UPSTREAM_UNREACHABLE: u32 = 980;
    /// The deploy API did not answer in time.
    pub const UPSTREAM_TIMEOUT: u32 = 981;
    /// The request could not be understood.
    pub const BAD_REQUEST: u32 = 982;
    /// The cleanup budget of the source is exhausted.
    pub const BUDGET: u32 = 974;
    /// The proof-of-work solution failed the gateway's own check.
    pub const POW: u32 = 975;
}

/// Builds `{"success":false,"errors":[{"code":..,"message":..}],"messages":[],"result":null}`.
pub fn error_body(code: u32, message: &str) -> Bytes {
    let body = serde_json::json!({
        "success": false,
        "errors": [{"code": code, "message": message}],
        "messages": [],
        "result": null,
    });
    Bytes::from(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_is_v4_shaped_and_escapes() {
        let body = error_body(971, "wait \"60\" s");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["success"], false);
        assert_eq!(v["errors"][0]["code"], 971);
        assert_eq!(v["errors"][0]["message"], "wait \"60\" s");
        assert!(v["result"].is_null());
        assert_eq!(v["messages"], serde_json::json!([]));
    }
}
