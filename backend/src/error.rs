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

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        let message = e.to_string();
        match e {
            ApiError::Invalid(violations) => {
                let details = ErrorDetails::with_bad_request(
                    violations
                        .into_iter()
                        .map(|v| tonic_types::FieldViolation::new(v.field, v.description))
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
            ApiError::Store(StoreError::Database(ref db)) => {
                tracing::error!(error = %db, "database failure");
                // Busy/locked databases are transient: tell clients to retry.
                match db {
                    sqlx::Error::PoolTimedOut => Status::unavailable(message),
                    _ => Status::internal("internal database error"),
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
