//! The backend's one error type and the one place it becomes a gRPC status.

use crate::store::StoreError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// A bad request field: the proto field name and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub description: String,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Request fields failed validation; carried to clients as google.rpc.BadRequest.
    #[error("invalid request: {}", describe(.0))]
    Invalid(Vec<Violation>),
    /// A request value that is not a field value, such as a page token, is malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// A per-client buffer or quota ran out (a lagging stream consumer).
    #[error("{0}")]
    ResourceExhausted(String),
    /// The request is valid but the system's state forbids it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Storage on disk (uploads) failed.
    #[error("storage error: {0}")]
    Io(#[from] std::io::Error),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn describe(violations: &[Violation]) -> String {
    violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect::<Vec<_>>().join("; ")
}

/// The longest status message sent. Messages travel in a response header (`grpc-message`), and
/// many echo what the client sent (an email, an id): unbounded, one long value would make a
/// header the peer must refuse, and with HTTP/2 that can fail a connection shared by others.
pub const MAX_MESSAGE: usize = 1024;
/// The longest field name and description of one violation in the BadRequest details (which
/// travel in a header too), and how many violations are sent.
const MAX_VIOLATION_TEXT: usize = 256;
const MAX_VIOLATIONS: usize = 16;

/// `text` cut to at most `max` bytes on a character boundary, marked with `…` when cut.
pub fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        let message = bounded(&e.to_string(), MAX_MESSAGE);
        match e {
            ApiError::Invalid(violations) => {
                let details = ErrorDetails::with_bad_request(
                    violations
                        .into_iter()
                        .take(MAX_VIOLATIONS)
                        .map(|v| {
                            tonic_types::FieldViolation::new(
                                bounded(&v.field, MAX_VIOLATION_TEXT),
                                bounded(&v.description, MAX_VIOLATION_TEXT),
                            )
                        })
                        .collect::<Vec<_>>(),
                );
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            ApiError::InvalidArgument(_) => Status::invalid_argument(message),
            ApiError::FailedPrecondition(_) => Status::failed_precondition(message),
            ApiError::ResourceExhausted(_) => Status::resource_exhausted(message),
            ApiError::Store(StoreError::NotFound(_)) => Status::not_found(message),
            ApiError::Store(StoreError::AlreadyExists(_)) => Status::already_exists(message),
            ApiError::Store(StoreError::InUse(_)) => Status::failed_precondition(message),
            ApiError::Store(StoreError::Conflict(_)) => Status::aborted(message),
            ApiError::Store(StoreError::Database { message: ref db, retryable }) => {
                tracing::error!(error = %db, retryable, "database failure");
                // What the store calls transient, clients may retry: UNAVAILABLE says so.
                if retryable {
                    Status::unavailable("the database is busy; try again")
                } else {
                    Status::internal("internal database error")
                }
            }
            ApiError::Io(ref e) => {
                tracing::error!(error = %e, "file storage failure");
                Status::internal("internal storage error")
            }
            ApiError::Store(StoreError::Corrupt(_)) => {
                tracing::error!(%message, "corrupt data");
                Status::data_loss(message)
            }
        }
    }
}

/// Collects field violations so that a client hears about every bad field at once.
#[derive(Debug, Default)]
pub struct Validator {
    violations: Vec<Violation>,
}

impl Validator {
    /// Records a violation when `ok` is false.
    pub fn check(&mut self, ok: bool, field: &str, description: impl Into<String>) -> &mut Self {
        if !ok {
            self.violations.push(Violation { field: field.to_owned(), description: description.into() });
        }
        self
    }

    /// `Err(ApiError::Invalid)` when anything was recorded.
    pub fn finish(&mut self) -> Result<(), ApiError> {
        if self.violations.is_empty() { Ok(()) } else { Err(ApiError::Invalid(std::mem::take(&mut self.violations))) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_that_echo_client_values_stay_small() {
        assert_eq!(bounded("short", 10), "short");
        let cut = bounded(&"é".repeat(1000), 11);
        assert!(cut.len() <= 11 && cut.ends_with('…'), "{cut}");
        let long = "x".repeat(100_000);
        let status = Status::from(ApiError::Invalid(vec![Violation {
            field: "email".into(),
            description: format!("{long:?} is not a valid email address"),
        }]));
        assert!(status.message().len() <= MAX_MESSAGE);
        assert!(status.details().len() < 2048, "{}", status.details().len());
        let status = Status::from(ApiError::Store(crate::store::StoreError::NotFound(format!("user {long:?}"))));
        assert_eq!(status.code(), Code::NotFound);
        assert!(status.message().len() <= MAX_MESSAGE);
    }
}
