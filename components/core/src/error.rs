//! The one error type of cd-core and its one mapping to HTTP: RFC 9457 problem+json.
//!
//! Variants are domain outcomes; each names its status. A 4xx says what the client can fix
//! (and names the offending `field` where there is one). A 5xx body is generic: the cause goes
//! to stderr (Spin's component log), never to the client.

use http::StatusCode;
use serde::Serialize;

use crate::db::DbError;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// 400: the request cannot be read (bad JSON syntax, bad query string, bad path id).
    Malformed {
        detail: String,
        field: Option<String>,
    },
    /// 401: no credentials where they are needed, or credentials we do not know.
    Unauthorized { detail: String },
    /// 403: known credentials whose role does not allow this.
    Forbidden { detail: String },
    /// 404: no such resource, or one the caller may not see (never reveals another org's rows).
    NotFound { detail: String },
    /// 405: the path exists, the method does not.
    MethodNotAllowed { allowed: String },
    /// 409: the request conflicts with what is stored.
    Conflict {
        detail: String,
        field: Option<String>,
    },
    /// 413: the body is larger than the configured limit.
    PayloadTooLarge { limit: usize },
    /// 415: a body that is not `application/json`.
    UnsupportedMediaType,
    /// 422: well-formed but invalid: the field and the reason.
    Invalid { field: String, reason: String },
    /// 503: the database stayed locked by other writers past the busy timeout; retry.
    Busy,
    /// 503: this instance is older than the database's schema (a newer cd-images is being
    /// rolled out): it answers reads but refuses writes, which it would make without the
    /// newer schema's derived data. Retry; a new instance will take it.
    OutdatedInstance { schema: i64, known: i64 },
    /// 503: the database is being re-encoded (migration 0007) and this read needs whole
    /// tables that are not all copied yet; the request copied what it could. Retry.
    Upgrading,
    /// 503: a feature this deployment has not configured (a Spin variable it needs is unset);
    /// the detail names the variable. Not retried: nothing changes until an operator acts.
    NotConfigured { detail: String },
    /// 500: our bug or the platform's (SQL error, unreadable row, missing configuration).
    Internal { cause: String },
}

impl Error {
    pub fn malformed(detail: impl Into<String>) -> Error {
        Error::Malformed {
            detail: detail.into(),
            field: None,
        }
    }

    /// A 400 naming the query parameter or path segment at fault.
    pub fn malformed_field(field: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::Malformed {
            detail: detail.into(),
            field: Some(field.into()),
        }
    }

    /// A 400 for a `cursor` that no page of this list handed out.
    pub fn bad_cursor() -> Error {
        Error::malformed_field("cursor", "cursor is not one this API handed out")
    }

    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Error {
        Error::NotFound {
            detail: detail.into(),
        }
    }

    pub fn conflict(detail: impl Into<String>) -> Error {
        Error::Conflict {
            detail: detail.into(),
            field: None,
        }
    }

    pub fn storage(cause: impl Into<String>) -> Error {
        Error::Internal {
            cause: cause.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::Malformed { .. } => StatusCode::BAD_REQUEST,
            Error::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Error::Forbidden { .. } => StatusCode::FORBIDDEN,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Error::Conflict { .. } => StatusCode::CONFLICT,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Busy
            | Error::OutdatedInstance { .. }
            | Error::Upgrading
            | Error::NotConfigured { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable slug per variant: the end of the problem `type` URI.
    fn slug(&self) -> &'static str {
        match self {
            Error::Malformed { .. } => "malformed-request",
            Error::Unauthorized { .. } => "unauthorized",
            Error::Forbidden { .. } => "forbidden",
            Error::NotFound { .. } => "not-found",
            Error::MethodNotAllowed { .. } => "method-not-allowed",
            Error::Conflict { .. } => "conflict",
            Error::PayloadTooLarge { .. } => "payload-too-large",
            Error::UnsupportedMediaType => "unsupported-media-type",
            Error::Invalid { .. } => "invalid-field",
            Error::Busy => "busy",
            Error::OutdatedInstance { .. } => "outdated-instance",
            Error::Upgrading => "upgrading",
            Error::NotConfigured { .. } => "not-configured",
            Error::Internal { .. } => "internal-error",
        }
    }

    fn detail(&self) -> String {
        match self {
            Error::Malformed { detail, .. }
            | Error::Unauthorized { detail }
            | Error::Forbidden { detail }
            | Error::NotFound { detail }
            | Error::NotConfigured { detail }
            | Error::Conflict { detail, .. } => detail.clone(),
            Error::MethodNotAllowed { allowed } => format!("allowed methods: {allowed}"),
            Error::PayloadTooLarge { limit } => {
                format!("the request body is larger than the limit of {limit} bytes")
            }
            Error::UnsupportedMediaType => {
                "the request body must be JSON (Content-Type: application/json)".to_owned()
            }
            Error::Invalid { field, reason } => format!("{field}: {reason}"),
            Error::Busy => "the database is busy with other writers; retry shortly".to_owned(),
            Error::OutdatedInstance { schema, known } => format!(
                "this instance knows schema version {known} and the database is at {schema}: \
                 a newer cd-images is being rolled out; retry shortly"
            ),
            Error::Upgrading => "the database is being upgraded to a new encoding and this read \
                 needs every row; retry shortly"
                .to_owned(),
            Error::Internal { .. } => "an internal error occurred; it has been logged".to_owned(),
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            Error::Malformed { field, .. } | Error::Conflict { field, .. } => field.as_deref(),
            Error::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }

    /// The problem document (RFC 9457) for this error.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        Problem {
            r#type: format!("urn:cd-images:problem:{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.detail(),
            field: self.field().map(str::to_owned),
        }
    }

    /// The complete HTTP response. 5xx causes are logged here, once, and never sent.
    pub fn into_response(self) -> http::Response<Vec<u8>> {
        if let Error::Internal { cause } = &self {
            // Debug-escaped: a cause may quote a client's text, and ESC or C1 controls in it must
            // not reach a terminal that shows the log.
            eprintln!("cd-core: internal error: {cause:?}");
        }
        let problem = self.problem();
        let body = serde_json::to_vec(&problem).expect("a problem document always serialises");
        let mut response = http::Response::builder()
            .status(self.status())
            .header(http::header::CONTENT_TYPE, "application/problem+json");
        match &self {
            Error::MethodNotAllowed { allowed } => {
                response = response.header(http::header::ALLOW, allowed.as_str());
            }
            Error::Unauthorized { .. } => {
                response = response.header(http::header::WWW_AUTHENTICATE, "Bearer");
            }
            Error::Busy | Error::OutdatedInstance { .. } | Error::Upgrading => {
                response = response.header(http::header::RETRY_AFTER, "1");
            }
            _ => {}
        }
        response.body(body).expect("status and headers are valid")
    }
}

/// RFC 9457 problem details, with the extension member `field`.
#[derive(Debug, Serialize)]
pub struct Problem {
    pub r#type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl From<DbError> for Error {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Busy(_) | DbError::Overloaded(_) => Error::Busy,
            // Constraint violations the handlers expect are mapped at their call sites with
            // the domain's words; one that reaches here is a bug in our checks.
            other => Error::Internal {
                cause: other.to_string(),
            },
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status(), self.detail())
    }
}

impl std::error::Error for Error {}
