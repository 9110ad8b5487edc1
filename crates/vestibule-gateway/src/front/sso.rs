//! Single sign-on for SSH logins: a keyboard-interactive round shows the link
//! (`Open https://bastion:8443/auth/approve/XXXX-XXXX to log in`), and the next
//! round waits until the person completes the login in a browser, as the same
//! user, or the approval times out. An unreachable IdP fails at once with a
//! message that names break-glass.

use std::borrow::Cow;

use russh::MethodSet;
use russh::server::{Auth, Response};
use vestibule_core::ConnectionRequest;

use super::Connection;

/// The SSO login under way on this connection.
pub(super) enum SsoLogin {
    /// The link was shown; the next round waits for the browser side.
    Waiting {
        request: ConnectionRequest,
        code: String,
    },
    /// It could not start; the person was told why and the next round fails.
    Refused,
}

impl Connection {
    pub(super) async fn single_sign_on(
        &mut self,
        user: &str,
        response: Option<Response<'_>>,
    ) -> Auth {
        let Some(sso) = self.shared.settings.sso.clone() else {
            return Auth::reject();
        };
        let refuse = || Auth::Reject {
            proceed_with_methods: Some(MethodSet::empty()),
            partial_success: false,
        };
        match (self.sso.take(), response) {
            (None, _) => {
                let Ok(request) = ConnectionRequest::parse(user) else {
                    return self.fail(user, "sso", "malformed user name".into());
                };
                let peer = self.peer.map(|p| p.ip().to_string()).unwrap_or_default();
                match sso.begin(&request.person, &peer).await {
                    Ok(approval) => {
                        self.sso = Some(SsoLogin::Waiting {
                            request,
                            code: approval.code,
                        });
                        show(format!("{}\n", approval.message))
                    }
                    Err(error) => {
                        let _ = self.fail(user, "sso", error.to_string());
                        self.sso = Some(SsoLogin::Refused);
                        show(format!("vestibule: {error}\n"))
                    }
                }
            }
            (Some(SsoLogin::Refused), _) => refuse(),
            (Some(SsoLogin::Waiting { request, code }), _) => {
                if ConnectionRequest::parse(user).ok().as_ref() != Some(&request) {
                    sso.cancel(&code);
                    return self.fail(user, "sso", "user name changed during sign-on".into());
                }
                match sso.wait(&code).await {
                    // A sign-on the IdP says was multi-factor counts as both
                    // factors; any other goes on to the TOTP code like a
                    // password would (asked when enrolled or required).
                    Ok(approved) if approved.user == request.person && approved.mfa => {
                        self.succeed(request, "sso+mfa")
                    }
                    Ok(approved) if approved.user == request.person => {
                        self.first_factor_passed(user, request, "sso").await
                    }
                    Ok(approved) => self.fail(
                        user,
                        "sso",
                        format!("single sign-on completed as {}", approved.user),
                    ),
                    Err(error) => self.fail(user, "sso", error.to_string()),
                }
            }
        }
    }
}

/// A keyboard-interactive round with a message and no prompt: OpenSSH prints
/// the message and answers at once, without needing a terminal.
fn show(message: String) -> Auth {
    Auth::Partial {
        name: Cow::Borrowed("Vestibule single sign-on"),
        instructions: Cow::Owned(message),
        prompts: Cow::Owned(Vec::new()),
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // A login left waiting for its browser side frees its code.
        if let (Some(SsoLogin::Waiting { code, .. }), Some(sso)) =
            (&self.sso, &self.shared.settings.sso)
        {
            sso.cancel(code);
        }
    }
}
