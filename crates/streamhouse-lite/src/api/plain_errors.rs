//! Errors our handlers never see, answered as [`ApiError`] JSON like theirs: an unknown path
//! (404), a known path with another method (405, `Allow` kept), and the plain-text rejections
//! of axum's extractors (a bad path parameter, a body past the limit).

use axum::Router;
use axum::body::to_bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::map_response;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Longest rejection text kept as the message; axum's are one short line.
const MAX_MESSAGE_BYTES: usize = 512;

/// `router` with a JSON 404 for unknown paths and every non-JSON error rewritten as JSON.
pub fn answer_as_json(router: Router) -> Router {
    router
        .fallback(not_found)
        .layer(map_response(rewrite_plain_error))
}

async fn not_found() -> ApiError {
    // The path is not echoed: the client knows it, and logs and caches need not.
    ApiError::not_found("not_found", "no such endpoint under /api/v1")
}

async fn rewrite_plain_error(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match to_bytes(body, MAX_MESSAGE_BYTES * 4).await {
        Ok(bytes) => truncated(&String::from_utf8_lossy(&bytes)).to_owned(),
        Err(_) => String::new(),
    };
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            "method not allowed; the Allow header lists this path's methods".to_owned()
        }
        _ if text.trim().is_empty() => status.canonical_reason().unwrap_or("error").to_owned(),
        _ => text.trim().to_owned(),
    };
    let json = ApiError::new(status, code_for(status), message).into_response();
    // Keep what the original said besides its body (`Allow` on a 405, for one).
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let (_, json_body) = json.into_parts();
    Response::from_parts(parts, json_body)
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"))
}

/// The stable code for an error status that no handler chose a code for.
pub fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_client_error() => "invalid_request",
        _ => "internal_error",
    }
}

fn truncated(text: &str) -> &str {
    if text.len() <= MAX_MESSAGE_BYTES {
        return text;
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_rejections_are_cut_on_a_character_boundary() {
        let text = "é".repeat(MAX_MESSAGE_BYTES);
        let cut = truncated(&text);
        assert!(cut.len() <= MAX_MESSAGE_BYTES);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(truncated("short"), "short");
    }

    #[test]
    fn each_error_status_has_a_code() {
        assert_eq!(code_for(StatusCode::PAYLOAD_TOO_LARGE), "body_too_large");
        assert_eq!(code_for(StatusCode::IM_A_TEAPOT), "invalid_request");
        assert_eq!(code_for(StatusCode::BAD_GATEWAY), "internal_error");
    }
}
