//! What the SSH gateway calls for a login approved in a browser: register a
//! pending approval (after checking that the IdP answers), show its link, and
//! wait for the browser side.

use std::sync::Arc;
use std::time::Duration;

use crate::{ApprovalKind, Approvals, Approved, OidcClient, SsoError};

/// Shared by the gateway's connections; cheap to clone.
#[derive(Clone)]
pub struct SshApprovals {
    client: Arc<OidcClient>,
    approvals: Arc<Approvals>,
    base_url: String,
    timeout: Duration,
}

/// A started SSH approval.
#[derive(Debug, Clone)]
pub struct SshApproval {
    /// `XXXX-XXXX`.
    pub code: String,
    /// `Open https://HOST:PORT/auth/approve/XXXX-XXXX to log in`.
    pub message: String,
}

impl SshApprovals {
    /// `base_url` is the gateway's HTTPS URL as browsers reach it.
    pub fn new(
        client: Arc<OidcClient>,
        approvals: Arc<Approvals>,
        base_url: String,
        timeout: Duration,
    ) -> Self {
        Self {
            client,
            approvals,
            base_url: base_url.trim_end_matches('/').to_owned(),
            timeout,
        }
    }

    /// Start an approval for an SSH login as `user` from `peer`. Fails fast,
    /// naming break-glass, when the IdP cannot be reached.
    pub async fn begin(&self, user: &str, peer: &str) -> Result<SshApproval, SsoError> {
        self.client.check_reachable().await?;
        let pending = self.approvals.create(
            ApprovalKind::Ssh {
                user: user.to_owned(),
                peer: peer.to_owned(),
            },
            self.timeout,
        )?;
        Ok(SshApproval {
            message: format!(
                "Open {}/auth/approve/{} to log in",
                self.base_url, pending.code
            ),
            code: pending.code,
        })
    }

    /// Wait for the browser side (at most the configured timeout). `Ok` only
    /// when the person signed in as the user the SSH login is for; the
    /// messages of errors are for the person.
    pub async fn wait(&self, code: &str) -> Result<Approved, SsoError> {
        self.approvals.wait(code, self.timeout).await
    }

    /// Forget `code` (the connection went away).
    pub fn cancel(&self, code: &str) {
        self.approvals.cancel(code);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Instant;

    use super::*;
    use crate::SsoSettings;

    #[tokio::test]
    async fn an_unreachable_idp_fails_fast_and_names_break_glass() {
        // Nothing listens on a port we just bound and released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let client = OidcClient::new(SsoSettings {
            issuer: format!("http://127.0.0.1:{port}"),
            client_id: "vestibule".into(),
            client_secret: "secret".to_owned().into(),
            scopes: vec![],
            username_claim: "preferred_username".into(),
            groups_claim: "groups".into(),
            groups_to_roles: BTreeMap::new(),
            mfa_amr_values: vec!["mfa".into()],
            auto_provision: false,
            redirect_url: "https://127.0.0.1:8443/auth/callback".into(),
            http_timeout: Duration::from_secs(3),
            ca_file: None,
        })
        .unwrap();
        let ssh = SshApprovals::new(
            Arc::new(client),
            Arc::new(Approvals::default()),
            "https://127.0.0.1:8443/".into(),
            Duration::from_secs(60),
        );
        let started = Instant::now();
        let error = ssh.begin("alice", "127.0.0.1").await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(error.is_unavailable());
        let message = error.to_string();
        assert!(
            message.contains("single sign-on is unavailable"),
            "{message}"
        );
        assert!(message.contains("vestibule breakglass"), "{message}");
        assert!(!message.contains("secret"), "{message}");
    }
}
