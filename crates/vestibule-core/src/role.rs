//! Roles: named bundles of access that are granted to people.

use crate::Selector;

/// Access to the targets a selector covers, as the listed logins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub targets: Selector,
    pub logins: Vec<String>,
    pub allow_port_forwarding: bool,
}
