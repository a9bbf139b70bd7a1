//! A tower layer requiring `Authorization: Bearer <token>` on every request, for
//! `/metrics` and `/health*` on an exposed admin listener.

use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use futures::future::{Either, Ready, ready};
use tower::{Layer, Service};

use crate::config::BearerToken;

/// Answers 401 with `WWW-Authenticate: Bearer` unless the request carries the token; compares
/// in constant time and never logs what it was sent.
///
/// Ours rather than tower-http's `ValidateRequestHeaderLayer::bearer`, which compares with
/// `==` and so leaks the token's prefix through timing.
///
/// ```
/// use axum::Router;
/// use streamhouse_observability::config::BearerToken;
/// use streamhouse_observability::http::{BearerAuthLayer, metrics_router};
/// use streamhouse_observability::{Telemetry, TelemetryConfig};
///
/// let telemetry = Telemetry::new(TelemetryConfig::default()).unwrap();
/// let token = BearerToken::new("scrape-me").unwrap();
/// let admin: Router = metrics_router(&telemetry).layer(BearerAuthLayer::new(token));
/// ```
#[derive(Debug, Clone)]
pub struct BearerAuthLayer {
    token: BearerToken,
}

impl BearerAuthLayer {
    /// A layer requiring `token`.
    pub fn new(token: BearerToken) -> Self {
        BearerAuthLayer { token }
    }
}

impl<S> Layer<S> for BearerAuthLayer {
    type Service = BearerAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth {
            inner,
            token: self.token.clone(),
        }
    }
}

/// The service [`BearerAuthLayer`] wraps.
#[derive(Debug, Clone)]
pub struct BearerAuth<S> {
    inner: S,
    token: BearerToken,
}

impl<S, B> Service<Request<B>> for BearerAuth<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response<Body>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let offered = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| bearer_credentials(value.as_bytes()));
        match offered {
            Some(offered) if self.token.matches(offered) => Either::Left(self.inner.call(request)),
            _ => Either::Right(ready(Ok(unauthorized()))),
        }
    }
}

/// The credentials of a `Bearer` authorization; the scheme is case-insensitive (RFC 9110).
fn bearer_credentials(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
}

fn unauthorized() -> Response<Body> {
    let mut response = Response::new(Body::from(
        "unauthorized: send Authorization: Bearer <token>\n",
    ));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_bearer_scheme_only() {
        assert_eq!(bearer_credentials(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_credentials(b"bEaReR  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer_credentials(b"Basic abc"), None);
        assert_eq!(bearer_credentials(b"Bearer"), None);
    }
}
