//! The second factor (TOTP by keyboard-interactive after a first factor, and
//! enrolling one at first login), brute-force limits on guessable secrets, and
//! break-glass tokens.
//!
//! To the client, an unknown user, a wrong secret and a lockout look the same: a
//! plain rejection. The reasons go to the audit trail only.

use std::borrow::Cow;

use russh::server::{Auth, Response};
use russh::{MethodKind, MethodSet};
use vestibule_core::ConnectionRequest;
use vestibule_identity::{self as identity, breakglass, mfa};
use zeroize::Zeroizing;

use super::Connection;
use crate::events::SessionEvent;

const CODE_PROMPT: &str = "Verification code: ";

/// The method recorded for a login that also passed TOTP; policy reads `+totp`
/// as MFA.
fn with_totp(first: &'static str) -> &'static str {
    match first {
        "publickey" => "publickey+totp",
        "password" => "password+totp",
        "certificate" => "certificate+totp",
        "sso" => "sso+totp",
        _ => "totp",
    }
}

impl Connection {
    fn peer_ip(&self) -> Option<std::net::IpAddr> {
        self.peer.map(|p| p.ip())
    }

    /// The person proved the first factor: let them in, or ask for a code.
    pub(super) async fn first_factor_passed(
        &mut self,
        user: &str,
        request: ConnectionRequest,
        method: &'static str,
    ) -> Auth {
        // An explanation kept from an earlier refusal (a lapsed certificate)
        // must not stand in for the code this factor may still need.
        self.explanation = None;
        let settings = &self.shared.settings;
        // Asked only of people without a factor: enrolled ones always give a code.
        let enrolled = match mfa::enrolled(&settings.store, &request.person).await {
            Ok(enrolled) => enrolled,
            Err(error) => return self.fail(user, method, error.to_string()),
        };
        let required = enrolled
            || match mfa::required(
                &settings.store,
                &request.person,
                settings.identity.require_mfa,
            )
            .await
            {
                Ok(required) => required,
                Err(error) => return self.fail(user, method, error.to_string()),
            };
        if !required {
            return self.succeed(request, method);
        }
        if enrolled {
            self.pending_second_factor = Some((request, method));
        } else if settings.identity.enroll_at_first_login {
            // The first factor is proven, so offering a secret reveals
            // nothing; it is stored only once a code from it is given.
            self.enrolling = Some((
                request.clone(),
                method,
                mfa::Enrolment::new(&request.person),
            ));
        } else {
            // Refused, but told why: keyboard-interactive carries the
            // message (the first factor is proven, so this reveals nothing).
            let _ = self.fail(
                user,
                method,
                "a second factor is required and none is enrolled".into(),
            );
            let person = &request.person;
            self.explanation = Some(format!(
                "a second factor is required and {person} has none; \
                 ask an administrator to run `vestibule user mfa enroll {person}`"
            ));
        }
        Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(&[MethodKind::KeyboardInteractive][..])),
            partial_success: true,
        }
    }

    /// Password authentication: a break-glass token or the person's password,
    /// each behind the brute-force limiter.
    pub(super) async fn password(&mut self, user: &str, password: &str) -> Auth {
        let Ok(request) = ConnectionRequest::parse(user) else {
            return self.fail(user, "password", "malformed user name".into());
        };
        let limiter = self.shared.settings.identity.limiter.clone();
        let store = self.shared.settings.store.clone();
        // Tokens are not guessable (160 bits), so a lockout, which anyone can
        // provoke for a user, must not keep the on-call person out.
        if breakglass::is_token(password) {
            return match breakglass::redeem(&store, &request.person, password).await {
                Ok(Some(token)) => {
                    limiter.success(&request.person);
                    self.shared
                        .settings
                        .events
                        .publish(SessionEvent::BreakglassUsed {
                            person: request.person.clone(),
                            token: token.id,
                            peer: self.peer,
                        });
                    // Break-glass stands in for every factor: it is for when the
                    // usual ones are unavailable.
                    self.succeed(request, "breakglass")
                }
                Ok(None) => {
                    self.slow_down(&request.person).await;
                    self.fail(
                        user,
                        "breakglass",
                        "invalid, used or expired break-glass token".into(),
                    )
                }
                Err(error) => self.fail(user, "breakglass", error.to_string()),
            };
        }
        if let Err(locked) = limiter.check(self.peer_ip(), &request.person) {
            return self.fail(
                user,
                "password",
                format!("locked out ({} s left)", locked.remaining.as_secs()),
            );
        }
        let checked = identity::verify_password(&store, &request.person, password.to_owned()).await;
        match checked {
            Ok(true) => {
                limiter.success(&request.person);
                self.first_factor_passed(user, request, "password").await
            }
            Ok(false) => {
                self.slow_down(&request.person).await;
                self.fail(user, "password", "unknown user or wrong password".into())
            }
            Err(error) => self.fail(user, "password", error.to_string()),
        }
    }

    /// Count a failure and wait the backoff before answering it.
    async fn slow_down(&self, person: &str) {
        let delay = self
            .shared
            .settings
            .identity
            .limiter
            .failure(self.peer_ip(), person);
        tokio::time::sleep(delay).await;
    }

    /// Keyboard-interactive: only the TOTP code after a first factor.
    pub(super) async fn keyboard_interactive(
        &mut self,
        user: &str,
        response: Option<Response<'_>>,
    ) -> Auth {
        if let Some(explanation) = &self.explanation {
            return match response {
                None => Auth::Partial {
                    name: Cow::Borrowed(""),
                    instructions: Cow::Owned(format!("vestibule: {explanation}\n")),
                    prompts: Cow::Owned(Vec::new()),
                },
                Some(_) => Auth::Reject {
                    proceed_with_methods: Some(MethodSet::empty()),
                    partial_success: false,
                },
            };
        }
        if self.enrolling.is_some() {
            return self.enrol(user, response).await;
        }
        let Some((request, method)) = self.pending_second_factor.clone() else {
            return self.single_sign_on(user, response).await;
        };
        let code = match self.code_answered(user, &request, response, "", String::new()) {
            Ok(code) => code,
            Err(auth) => return auth,
        };
        let limiter = self.shared.settings.identity.limiter.clone();
        match mfa::verify_code(&self.shared.settings.store, &request.person, &code).await {
            Ok(true) => {
                limiter.success(&request.person);
                self.pending_second_factor = None;
                self.succeed(request, with_totp(method))
            }
            Ok(false) => {
                self.slow_down(&request.person).await;
                self.fail(user, "totp", "wrong or reused verification code".into())
            }
            Err(error) => self.fail(user, "totp", error.to_string()),
        }
    }
}

impl Connection {
    /// The code a keyboard-interactive round answered, or what to reply
    /// instead: the prompt (titled `name`, with `instructions`) when nothing
    /// was asked yet, a failure when the user name changed after the first
    /// factor or the person is locked out.
    fn code_answered(
        &mut self,
        user: &str,
        request: &ConnectionRequest,
        response: Option<Response<'_>>,
        name: &'static str,
        instructions: String,
    ) -> Result<Zeroizing<String>, Auth> {
        if ConnectionRequest::parse(user).ok().as_ref() != Some(request) {
            return Err(self.fail(
                user,
                "totp",
                "user name changed after the first factor".into(),
            ));
        }
        let Some(mut response) = response else {
            return Err(Auth::Partial {
                name: Cow::Borrowed(name),
                instructions: Cow::Owned(instructions),
                prompts: Cow::Owned(vec![(Cow::Borrowed(CODE_PROMPT), false)]),
            });
        };
        let code = Zeroizing::new(
            response
                .next()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default(),
        );
        if let Err(locked) = self
            .shared
            .settings
            .identity
            .limiter
            .check(self.peer_ip(), &request.person)
        {
            return Err(self.fail(
                user,
                "totp",
                format!("locked out ({} s left)", locked.remaining.as_secs()),
            ));
        }
        Ok(code)
    }

    /// Enrolment at first login: the first round shows the new secret (QR
    /// code, URI, the secret itself) and asks for a code; a correct code stores
    /// the secret and completes the login as two factors. A wrong code leaves
    /// the offer standing, so the client's next round shows the same secret.
    async fn enrol(&mut self, user: &str, response: Option<Response<'_>>) -> Auth {
        let Some((request, method, enrolment)) = &self.enrolling else {
            return Auth::reject();
        };
        let (request, method) = (request.clone(), *method);
        let instructions = enrolment.instructions().to_string();
        let code = match self.code_answered(
            user,
            &request,
            response,
            "Vestibule: set up a second factor",
            instructions,
        ) {
            Ok(code) => code,
            Err(auth) => return auth,
        };
        let Some((_, _, enrolment)) = &self.enrolling else {
            return Auth::reject();
        };
        let limiter = self.shared.settings.identity.limiter.clone();
        match enrolment.confirm(&self.shared.settings.store, &code).await {
            Ok(true) => {
                limiter.success(&request.person);
                self.enrolling = None;
                self.shared
                    .settings
                    .events
                    .publish(SessionEvent::MfaEnrolled {
                        person: request.person.clone(),
                        method,
                        peer: self.peer,
                    });
                self.succeed(request, with_totp(method))
            }
            Ok(false) => {
                self.slow_down(&request.person).await;
                self.fail(
                    user,
                    "totp",
                    "wrong verification code while enrolling a second factor".into(),
                )
            }
            Err(error) => self.fail(user, "totp", error.to_string()),
        }
    }
}
