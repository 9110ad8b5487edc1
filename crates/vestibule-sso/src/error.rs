//! What can go wrong with a single sign-on.

/// A failed single sign-on. Messages are one line for the person and never
/// carry a secret.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    /// The identity provider cannot be reached (connection refused, timeout,
    /// DNS, TLS, or a server error from it).
    #[error(
        "single sign-on is unavailable (the identity provider at {issuer} cannot be reached); use a break-glass account (vestibule breakglass) if this is an emergency"
    )]
    Unavailable { issuer: String, detail: String },
    /// The login state is unknown, expired, already used, or not this browser's.
    #[error("this login is unknown, expired or already used; start again")]
    BadState,
    /// The identity provider answered, but what it said cannot be trusted or used.
    #[error("the identity provider's answer was refused: {0}")]
    Invalid(String),
    /// The identity provider reported an error (e.g. the person cancelled).
    #[error("the identity provider refused the login: {0}")]
    Refused(String),
    /// The person is not (and may not become) a Vestibule user.
    #[error("{0}")]
    NotAllowed(String),
    /// Too many logins or approvals in progress.
    #[error("too many single sign-on logins in progress; try again shortly")]
    Busy,
    /// A pending SSH approval was not completed in time.
    #[error("single sign-on was not completed in time")]
    TimedOut,
    /// Configuration that cannot work.
    #[error("single sign-on configuration: {0}")]
    Config(String),
}

impl SsoError {
    /// Whether this is an IdP outage (so a caller can answer 503).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// The technical detail of an outage, for the gateway log.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::Unavailable { detail, .. } => Some(detail),
            _ => None,
        }
    }
}
