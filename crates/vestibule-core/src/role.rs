//! Roles: named bundles of access that are granted to people.

use crate::Selector;

/// Access to the targets a selector covers, as the listed logins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub targets: Selector,
    pub logins: Vec<String>,
    pub allow_port_forwarding: bool,
    /// Holders must log in with a second factor (TOTP, or an SSO login the
    /// identity provider says was multi-factor); people without one are
    /// offered enrolment at their first login.
    pub require_mfa: bool,
}
