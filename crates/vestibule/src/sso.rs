//! `[sso]` in `vestibule.toml`: OpenID Connect single sign-on, and what
//! `serve` builds from it (the relying party and the pending approvals shared
//! by the HTTPS API and the SSH gateway).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use vestibule_sso::{Approvals, OidcClient, SsoSettings};

use crate::datadir::DataDir;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoConfig {
    /// The IdP's issuer URL (discovery at ISSUER/.well-known/openid-configuration).
    pub issuer: String,
    pub client_id: String,
    /// The client secret inline, or (better) in a 0600 file.
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub client_secret_file: Option<String>,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    #[serde(default)]
    pub groups_to_roles: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub auto_provision: bool,
    /// The gateway's HTTPS URL as browsers reach it; the IdP must allow
    /// BASE_URL/auth/callback as a redirect URI.
    pub base_url: String,
    #[serde(default = "default_http_timeout")]
    pub http_timeout_secs: u64,
    #[serde(default = "default_approval_timeout")]
    pub approval_timeout_secs: u64,
    /// PEM roots for the IdP's TLS certificate (default: the system's).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// `amr` values (RFC 8176) in the id_token that make a single sign-on
    /// count as multi-factor (satisfying require_mfa; policy `context.mfa`).
    #[serde(default = "default_mfa_amr_values")]
    pub mfa_amr_values: Vec<String>,
}

fn default_mfa_amr_values() -> Vec<String> {
    vestibule_sso::DEFAULT_MFA_AMR_VALUES
        .iter()
        .map(|v| (*v).to_owned())
        .collect()
}

impl std::fmt::Debug for SsoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<hidden>"),
            )
            .field("client_secret_file", &self.client_secret_file)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

fn default_scopes() -> Vec<String> {
    ["openid", "profile", "email", "groups"]
        .map(String::from)
        .to_vec()
}

fn default_username_claim() -> String {
    "preferred_username".into()
}

fn default_groups_claim() -> String {
    "groups".into()
}

fn default_http_timeout() -> u64 {
    5
}

fn default_approval_timeout() -> u64 {
    300
}

impl SsoConfig {
    /// Checks that need no files.
    pub fn validate(&self) -> Result<()> {
        if self.client_secret.is_some() == self.client_secret_file.is_some() {
            bail!("sso: set exactly one of client_secret and client_secret_file");
        }
        if !(1..=60).contains(&self.http_timeout_secs) {
            bail!("sso.http_timeout_secs must be between 1 and 60");
        }
        if !(30..=3600).contains(&self.approval_timeout_secs) {
            bail!("sso.approval_timeout_secs must be between 30 and 3600");
        }
        if !self.base_url.starts_with("https://") {
            bail!("sso.base_url must be the gateway's https:// URL");
        }
        for url in [&self.issuer, &self.base_url] {
            reqwest::Url::parse(url).with_context(|| format!("sso: {url:?} is not a URL"))?;
        }
        for (group, roles) in &self.groups_to_roles {
            for role in roles {
                vestibule_core::validate_name("role", role)
                    .map_err(|e| anyhow::anyhow!("sso.groups_to_roles.{group}: {e}"))?;
            }
        }
        Ok(())
    }
}

/// Single sign-on, ready to serve.
pub struct Sso {
    pub client: Arc<OidcClient>,
    pub approvals: Arc<Approvals>,
    pub base_url: String,
    pub approval_timeout: Duration,
}

impl Sso {
    /// What the SSH gateway needs for logins approved in a browser.
    pub fn ssh_approvals(&self) -> vestibule_sso::SshApprovals {
        vestibule_sso::SshApprovals::new(
            self.client.clone(),
            self.approvals.clone(),
            self.base_url.clone(),
            self.approval_timeout,
        )
    }

    pub fn open(dir: &DataDir, config: &SsoConfig) -> Result<Self> {
        let secret = match (&config.client_secret, &config.client_secret_file) {
            (Some(secret), _) => secret.clone(),
            (None, Some(file)) => {
                let path = dir.resolve(file);
                crate::datadir::require_private(&path)?;
                std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?
                    .trim()
                    .to_owned()
            }
            (None, None) => bail!("sso: no client secret"),
        };
        let base_url = config.base_url.trim_end_matches('/').to_owned();
        let client = OidcClient::new(SsoSettings {
            issuer: config.issuer.clone(),
            client_id: config.client_id.clone(),
            client_secret: zeroize::Zeroizing::new(secret),
            scopes: config.scopes.clone(),
            username_claim: config.username_claim.clone(),
            groups_claim: config.groups_claim.clone(),
            groups_to_roles: config.groups_to_roles.clone(),
            auto_provision: config.auto_provision,
            redirect_url: format!("{base_url}/auth/callback"),
            http_timeout: Duration::from_secs(config.http_timeout_secs),
            ca_file: config.ca_file.as_deref().map(|f| dir.resolve(f)),
            mfa_amr_values: config.mfa_amr_values.clone(),
        })?;
        Ok(Self {
            client: Arc::new(client),
            approvals: Arc::new(Approvals::default()),
            base_url,
            approval_timeout: Duration::from_secs(config.approval_timeout_secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        issuer = "https://idp.example.com"
        client_id = "vestibule"
        base_url = "https://bastion.example.com:8443"
    "#;

    fn parse(extra: &str) -> SsoConfig {
        toml::from_str(&format!("{BASE}\n{extra}")).unwrap()
    }

    #[test]
    fn validates() {
        let config =
            parse("client_secret_file = \"sso_secret\"\n[groups_to_roles]\nops = [\"operators\"]");
        config.validate().unwrap();
        assert_eq!(config.username_claim, "preferred_username");
        assert!(config.mfa_amr_values.contains(&"mfa".to_owned()));
        let strict = parse("client_secret = \"x\"\nmfa_amr_values = [\"hwk\"]");
        assert_eq!(strict.mfa_amr_values, vec!["hwk".to_owned()]);
        assert_eq!(config.groups_to_roles["ops"], vec!["operators".to_string()]);
        let both = parse("client_secret_file = \"f\"\nclient_secret = \"x\"");
        assert!(both.validate().is_err());
        assert!(parse("").validate().is_err());
        let inline = parse("client_secret = \"hunter2\"");
        inline.validate().unwrap();
        assert!(!format!("{inline:?}").contains("hunter2"));
        let plain = parse("client_secret = \"x\"\nhttp_timeout_secs = 0");
        assert!(plain.validate().is_err());
    }
}
