//! Vestibule's OpenID Connect single sign-on.
//!
//! Owns: the relying party (discovery, the authorization-code flow with PKCE,
//! state and nonce, id_token validation, userinfo), the mapping of a person's
//! IdP groups to Vestibule roles and the auto-provisioning decision, and the
//! registry of pending SSH approvals (`XXXX-XXXX` codes that a browser login
//! completes while an SSH connection waits).
//! Must not touch: the database (the caller applies [`Identity`] to the store),
//! HTTP routing, SSH. Secrets (client secret, codes, tokens) are never logged.

mod approvals;
mod error;
mod jwt;
mod mapping;
mod oidc;
mod ssh;

pub use approvals::{APPROVAL_CODE_LEN, ApprovalKind, Approvals, Approved, PendingApproval};
pub use error::SsoError;
pub use mapping::{RoleSync, plan_role_sync};
pub use oidc::{DEFAULT_MFA_AMR_VALUES, Identity, LoginStart, OidcClient, SsoSettings, amr_is_mfa};
pub use ssh::{SshApproval, SshApprovals};
