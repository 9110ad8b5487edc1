//! Targets: the hosts the gateway connects people to.

use std::fmt;

use crate::validate_name;

/// A host reachable through the gateway.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Target {
    pub name: String,
    pub host: String,
    pub port: u16,
    /// The login used when the person names none.
    pub default_login: Option<String>,
    pub labels: Vec<Label>,
    pub host_key: HostKeyPolicy,
    pub credential: TargetCredential,
}

/// How the gateway logs in to a target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetCredential {
    /// A fresh key and a short-lived certificate from the user CA for each
    /// session; the target trusts the CA (`TrustedUserCAKeys`).
    #[default]
    Certificate,
    /// The gateway's static key, in the target's authorized_keys (legacy hosts).
    StaticKey,
}

impl TargetCredential {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Certificate => "certificate",
            Self::StaticKey => "static_key",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "certificate" => Some(Self::Certificate),
            "static_key" => Some(Self::StaticKey),
            _ => None,
        }
    }
}

/// How the gateway knows it reached the real target and not an impostor.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum HostKeyPolicy {
    /// The target must present exactly this key (OpenSSH public key line).
    Pinned { key: String },
    /// The first key seen is recorded and pinned from then on.
    TrustOnFirstUse { recorded: Option<String> },
    /// The target presents a host certificate signed by one of these CA keys
    /// (OpenSSH public key lines), valid for its name or address.
    CertifiedBy { ca_keys: Vec<String> },
}

impl HostKeyPolicy {
    /// The key the target must present, if one is known yet.
    pub fn expected_key(&self) -> Option<&str> {
        match self {
            Self::Pinned { key } => Some(key),
            Self::TrustOnFirstUse { recorded } => recorded.as_deref(),
            Self::CertifiedBy { .. } => None,
        }
    }
}

/// A `key=value` label on a target, used by selectors.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Label {
    pub key: String,
    pub value: String,
}

impl Label {
    pub fn parse(text: &str) -> Result<Self, crate::NameError> {
        let (key, value) = text.split_once('=').ok_or(crate::NameError {
            kind: "label",
            name: text.to_owned(),
            rule: "must be written key=value",
        })?;
        validate_name("label key", key)?;
        validate_name("label value", value)?;
        Ok(Self {
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}
