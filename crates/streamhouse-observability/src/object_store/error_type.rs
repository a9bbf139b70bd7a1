//! Maps an `object_store` error to the closed set of `error_type` label values.

use object_store::Error;

use crate::metrics::S3Error;

/// The `error_type` label of an object store error.
///
/// Kinds the store reports are mapped one to one; a [`Error::Generic`] whose source chain
/// reads as a timeout (an `io::ErrorKind::TimedOut`, or a message saying "timed out" or
/// "timeout", as `reqwest` and the retry layer report them) is [`S3Error::Timeout`];
/// anything else is [`S3Error::Other`].
///
/// ```
/// use streamhouse_observability::metrics::S3Error;
/// use streamhouse_observability::object_store::s3_error_type;
///
/// let err = object_store::Error::NotFound { path: "a".into(), source: "gone".into() };
/// assert_eq!(s3_error_type(&err), S3Error::NotFound);
/// let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
/// let err = object_store::Error::Generic { store: "S3", source: Box::new(io) };
/// assert_eq!(s3_error_type(&err), S3Error::Timeout);
/// ```
pub fn s3_error_type(error: &Error) -> S3Error {
    match error {
        Error::NotFound { .. } => S3Error::NotFound,
        Error::AlreadyExists { .. } => S3Error::AlreadyExists,
        Error::Precondition { .. } => S3Error::Precondition,
        Error::NotModified { .. } => S3Error::NotModified,
        Error::PermissionDenied { .. } => S3Error::PermissionDenied,
        Error::Unauthenticated { .. } => S3Error::Unauthenticated,
        Error::NotSupported { .. } | Error::NotImplemented { .. } => S3Error::NotSupported,
        Error::InvalidPath { .. } | Error::UnknownConfigurationKey { .. } => {
            S3Error::InvalidRequest
        }
        Error::Generic { .. } if is_timeout(error) => S3Error::Timeout,
        _ => S3Error::Other,
    }
}

fn is_timeout(error: &Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        let message = err.to_string().to_ascii_lowercase();
        if message.contains("timed out") || message.contains("timeout") {
            return true;
        }
        current = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(msg: &str) -> Box<dyn std::error::Error + Send + Sync> {
        msg.into()
    }

    #[test]
    fn maps_every_kind() {
        let path = || "p".to_owned();
        let cases = [
            (
                Error::NotFound {
                    path: path(),
                    source: boxed("x"),
                },
                S3Error::NotFound,
            ),
            (
                Error::AlreadyExists {
                    path: path(),
                    source: boxed("x"),
                },
                S3Error::AlreadyExists,
            ),
            (
                Error::Precondition {
                    path: path(),
                    source: boxed("x"),
                },
                S3Error::Precondition,
            ),
            (
                Error::NotModified {
                    path: path(),
                    source: boxed("x"),
                },
                S3Error::NotModified,
            ),
            (
                Error::PermissionDenied {
                    path: path(),
                    source: boxed("x"),
                },
                S3Error::PermissionDenied,
            ),
            (
                Error::Unauthenticated {
                    path: path(),
                    source: boxed("x"),
                },
                S3Error::Unauthenticated,
            ),
            (
                Error::NotSupported { source: boxed("x") },
                S3Error::NotSupported,
            ),
            (
                Error::NotImplemented {
                    operation: "op".into(),
                    implementer: "me".into(),
                },
                S3Error::NotSupported,
            ),
            (
                Error::Generic {
                    store: "S3",
                    source: boxed("connection reset"),
                },
                S3Error::Other,
            ),
            (
                Error::Generic {
                    store: "S3",
                    source: boxed("request timed out after 5s"),
                },
                S3Error::Timeout,
            ),
        ];
        for (err, want) in cases {
            assert_eq!(s3_error_type(&err), want, "{err}");
        }
    }
}
