//! The bearer rule: when a token is configured (always, off loopback), every path but the
//! health probes, the status page and its static assets needs `Authorization: Bearer <token>`.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState};

/// Paths anyone may read: orchestrators probe them without credentials, and the status
/// page (which holds no data) must load before it can ask for the token.
const OPEN_PATHS: [&str; 3] = ["/healthz", "/readyz", "/"];
/// The status page's static files, which hold no data.
const OPEN_PREFIX: &str = "/assets/";

/// Applies the bearer rule to every route `router` holds, including ones merged in from
/// elsewhere; call it last.
pub fn protect(router: Router, state: ApiState) -> Router {
    router.layer(middleware::from_fn_with_state(state, require_token))
}

async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if OPEN_PATHS.contains(&path) || path.starts_with(OPEN_PREFIX) {
        return next.run(request).await;
    }
    // Read per request: a reload may have set, changed or removed the token.
    let expected = state.daemon().config().http.token.clone();
    let Some(expected) = expected else {
        return next.run(request).await;
    };
    // The scheme's name is case-insensitive (RFC 9110 §11.1).
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token);
    match presented {
        Some(token) if same_token(token.trim(), expected.expose()) => next.run(request).await,
        Some(_) => unauthorized("the bearer token is wrong"),
        None => unauthorized("this path needs `Authorization: Bearer <token>`"),
    }
}

fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Compares in time independent of where the tokens differ: both are hashed first, so
/// even their lengths are compared without an early exit.
fn same_token(presented: &str, expected: &str) -> bool {
    use ring::digest::{SHA256, digest};
    let presented = digest(&SHA256, presented.as_bytes());
    let expected = digest(&SHA256, expected.as_bytes());
    let difference = presented
        .as_ref()
        .iter()
        .zip(expected.as_ref())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::same_token;

    #[test]
    fn only_the_identical_token_matches() {
        assert!(same_token("s3cret-token", "s3cret-token"));
        for other in ["", "s3cret-toke", "s3cret-token2", "S3cret-token", "x"] {
            assert!(!same_token(other, "s3cret-token"), "{other}");
        }
    }
}
