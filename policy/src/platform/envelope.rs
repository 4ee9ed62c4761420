//! The v4 envelope of the gateway's own answers.

/// Error codes the gateway uses in its own envelopes. They sit in a range of their own
/// so that support staff can tell a gateway refusal from an API error at a glance.
pub mod codes {
    /// A rate limit refused the request.
    pub const RATE_LIMITED: u32 = 971;
    /// A deny list or deny rule refused the request.
    pub const DENIED: u32 = 972;
    /// A resource quota of the temporary account refused the request.
    pub const QUOTA: u32 = 973;
    /// The cleanup budget of the source is exhausted.
    pub const BUDGET: u32 = 974;
    /// The proof-of-work solution failed the gateway's own check.
    pub const POW: u32 = 975;
    /// The deploy API could not be reached.
    pub const UPSTREAM_UNREACHABLE: u32 = 980;
    /// The deploy API did not answer in time.
    pub const UPSTREAM_TIMEOUT: u32 = 981;
    /// The request could not be understood.
    pub const BAD_REQUEST: u32 = 982;
    /// The gateway has no room to hold the request's body right now.
    pub const BUSY: u32 = 983;
    /// The fleet's shared rate-limit store is unreachable (a `closed` limit).
    pub const STORE_UNAVAILABLE: u32 = 984;
}

/// Builds `{"success":false,"errors":[{"code":..,"message":..}],"messages":[],"result":null}`:
/// wrangler prints the first error's message verbatim, so the gateway's own answers
/// use the envelope of the API it fronts.
pub fn error_body(code: u32, message: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "success": false,
        "errors": [{"code": code, "message": message}],
        "messages": [],
        "result": null,
    });
    body.to_string().into_bytes()
}
