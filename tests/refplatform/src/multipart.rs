//! Buffering multipart/form-data bodies (script uploads, asset uploads).

use axum::extract::Multipart;

use crate::envelope::ApiError;

/// One form part, fully read.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Read every part of `mp`; a malformed body is a 400, never a panic.
pub(crate) async fn read_all(mut mp: Multipart) -> Result<Vec<Part>, ApiError> {
    let mut parts = Vec::new();
    loop {
        let field = mp
            .next_field()
            .await
            .map_err(|e| ApiError::bad_request(format!("malformed multipart body: {e}")))?;
        let Some(field) = field else { break };
        let name = field.name().unwrap_or_default().to_string();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| ApiError::bad_request(format!("malformed multipart part: {e}")))?;
        parts.push(Part { name, bytes: bytes.to_vec() });
    }
    Ok(parts)
}
