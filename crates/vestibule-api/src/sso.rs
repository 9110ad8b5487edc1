//! Single sign-on over HTTP: `GET /auth/login` (to the IdP), `GET
//! /auth/callback` (back from it: the person is provisioned or updated and
//! their SSO-managed role grants follow their groups), `GET
//! /auth/approve/XXXX-XXXX` (a browser login that completes a waiting SSH
//! connection or `vestibule login --sso`), and `POST /v1/login/sso` and
//! `POST /v1/login/sso/wait` for `vestibule login --sso`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use russh::keys::ssh_key::PublicKey;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use vestibule_ca::LiveKeyring;
use vestibule_sso::{ApprovalKind, Approvals, Approved, Identity, OidcClient, SsoError};
use vestibule_store::Store;

use crate::LoginResponse;

/// The browser cookie that ties a callback to the browser that started the
/// login (its value is the single-use state).
const STATE_COOKIE: &str = "__Host-vestibule-sso";

/// What the single sign-on routes need.
pub struct SsoApiSettings {
    pub store: Store,
    pub user_ca: Arc<LiveKeyring>,
    pub client: Arc<OidcClient>,
    /// Shared with the SSH gateway, which waits on codes it shows people.
    pub approvals: Arc<Approvals>,
    /// The gateway's HTTPS URL as browsers reach it (no trailing slash).
    pub base_url: String,
    /// How long `vestibule login --sso` waits for the browser side.
    pub approval_timeout: Duration,
    pub default_login_ttl: Duration,
    pub max_login_ttl: Duration,
    /// Where SSO logins and their certificates are recorded.
    pub audit: Option<vestibule_audit::AuditHandle>,
}

/// `vestibule login --sso`, first step.
#[derive(Debug, Serialize, Deserialize)]
pub struct SsoLoginRequest {
    /// Who the person expects to be; the single sign-on must name them.
    #[serde(default)]
    pub user: Option<String>,
    /// The new public key to certify (OpenSSH line).
    pub public_key: String,
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SsoLoginResponse {
    /// `XXXX-XXXX`.
    pub code: String,
    /// Where the person completes the login in a browser.
    pub url: String,
    pub expires_in_secs: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SsoWaitRequest {
    pub code: String,
}

/// The single sign-on routes, to merge into the API's router.
pub fn sso_router(settings: SsoApiSettings) -> Router {
    Router::new()
        .route("/auth/login", get(login))
        .route("/auth/callback", get(callback))
        .route("/auth/approve/{code}", get(approve))
        .route("/v1/login/sso", post(cli_start))
        .route("/v1/login/sso/wait", post(cli_wait))
        .with_state(Arc::new(settings))
}

type St = State<Arc<SsoApiSettings>>;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Vestibule: {t}</title></head>\
         <body><h1>{t}</h1><p>{b}</p></body></html>\n",
        t = escape(title),
        b = escape(body)
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn status_of(error: &SsoError) -> StatusCode {
    match error {
        SsoError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        SsoError::BadState => StatusCode::BAD_REQUEST,
        SsoError::Invalid(_) | SsoError::Refused(_) => StatusCode::UNAUTHORIZED,
        SsoError::NotAllowed(_) => StatusCode::FORBIDDEN,
        SsoError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        SsoError::TimedOut => StatusCode::REQUEST_TIMEOUT,
        SsoError::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn log_error(error: &SsoError, peer: SocketAddr) {
    match error.detail() {
        Some(detail) => {
            tracing::warn!(%peer, %detail, "single sign-on: identity provider unreachable")
        }
        None => tracing::info!(%peer, %error, "single sign-on refused"),
    }
}

fn error_page(error: &SsoError) -> Response {
    page(
        status_of(error),
        "Single sign-on failed",
        &error.to_string(),
    )
}

fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// The value of `name` in a URL query, if present.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// Start a login and send the browser to the IdP.
async fn login(
    State(s): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
) -> Response {
    let approve = query_param(query.as_deref(), "approve");
    if let Some(code) = &approve
        && s.approvals.pending(code).is_none()
    {
        return page(
            StatusCode::NOT_FOUND,
            "Unknown code",
            "This login code is unknown, expired or already used.",
        );
    }
    match s.client.start(approve.clone()).await {
        Ok(start) => {
            let cookie = format!(
                "{STATE_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=600",
                start.state
            );
            let mut response = StatusCode::SEE_OTHER.into_response();
            let headers = response.headers_mut();
            if let (Ok(location), Ok(cookie)) = (
                HeaderValue::from_str(&start.url),
                HeaderValue::from_str(&cookie),
            ) {
                headers.insert(header::LOCATION, location);
                headers.insert(header::SET_COOKIE, cookie);
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            } else {
                page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Single sign-on failed",
                    "the identity provider's authorization URL is not usable",
                )
            }
        }
        Err(error) => {
            log_error(&error, peer);
            // The waiting SSH connection or command line hears it at once.
            if error.is_unavailable()
                && let Some(code) = &approve
            {
                s.approvals.complete(code, Err(error.to_string()));
            }
            error_page(&error)
        }
    }
}

/// A pending approval's link: straight on to the IdP.
async fn approve(State(s): St, Path(code): Path<String>) -> Response {
    if s.approvals.pending(&code).is_none() {
        return page(
            StatusCode::NOT_FOUND,
            "Unknown code",
            "This login code is unknown, expired or already used.",
        );
    }
    let location = format!("/auth/login?approve={}", code.trim().to_ascii_uppercase());
    match HeaderValue::from_str(&location) {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        Err(_) => page(StatusCode::BAD_REQUEST, "Unknown code", "not a login code"),
    }
}

fn state_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == STATE_COOKIE)
        .map(|(_, value)| value.to_owned())
}

fn clear_cookie(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "__Host-vestibule-sso=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0",
        ),
    );
    response
}

/// Back from the IdP.
async fn callback(
    State(s): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let param = |name| query_param(query.as_deref(), name);
    let state = param("state").unwrap_or_default();
    let cookie = state_cookie(&headers).unwrap_or_default();
    let same_browser = !state.is_empty() && bool::from(state.as_bytes().ct_eq(cookie.as_bytes()));
    if !same_browser {
        tracing::info!(%peer, "single sign-on refused: state missing or not this browser's");
        return clear_cookie(error_page(&SsoError::BadState));
    }
    let approval = s.client.approval_of(&state);
    let result = match (param("error"), param("code")) {
        (Some(error), _) => {
            s.client.discard(&state);
            Err(SsoError::Refused(
                error
                    .chars()
                    .filter(char::is_ascii_graphic)
                    .take(64)
                    .collect(),
            ))
        }
        (None, Some(code)) => {
            s.client
                .finish(&state, &code, param("iss").as_deref())
                .await
        }
        (None, None) => {
            s.client.discard(&state);
            Err(SsoError::Invalid("no code in the callback".into()))
        }
    };
    let identity = match result {
        Ok(identity) => identity,
        Err(error) => {
            log_error(&error, peer);
            if let Some(code) = &approval {
                s.approvals.complete(code, Err(error.to_string()));
            }
            return clear_cookie(error_page(&error));
        }
    };
    let roles = match provision(&s, &identity).await {
        Ok(roles) => roles,
        Err(error) => {
            log_error(&error, peer);
            if let Some(code) = &approval {
                s.approvals.complete(code, Err(error.to_string()));
            }
            return clear_cookie(error_page(&error));
        }
    };
    let user = identity.user.clone();
    let method = if identity.mfa { "sso+mfa" } else { "sso" };
    tracing::info!(%user, %peer, roles = ?roles, mfa = identity.mfa, "single sign-on succeeded");
    if let Some(audit) = &s.audit {
        audit.record(
            vestibule_audit::AuditEvent::new(
                vestibule_audit::Action::AuthenticationSuccess,
                vestibule_audit::Outcome::Success,
            )
            .user(&user)
            .source(peer)
            .auth_method(method)
            .detail("roles", roles.clone()),
        );
    }
    let response = match &identity.approval {
        None => page(
            StatusCode::OK,
            "Signed in",
            &format!(
                "Signed in to Vestibule as {user} (roles: {}). For an SSH certificate, run `vestibule login --sso`.",
                if roles.is_empty() {
                    "none".to_owned()
                } else {
                    roles.join(", ")
                }
            ),
        ),
        Some(code) => complete_approval(&s, code, &user, roles, identity.mfa, peer).await,
    };
    clear_cookie(response)
}

/// The browser side of a pending approval is done: hand the waiter its result.
async fn complete_approval(
    s: &SsoApiSettings,
    code: &str,
    user: &str,
    roles: Vec<String>,
    mfa: bool,
    peer: SocketAddr,
) -> Response {
    let Some(kind) = s.approvals.pending(code) else {
        return page(
            StatusCode::GONE,
            "Login expired",
            "The login this code was for is no longer waiting; start it again.",
        );
    };
    match kind {
        ApprovalKind::Ssh { user: wanted, .. } => {
            if wanted != user {
                let message = format!(
                    "single sign-on was completed as {user}, but the SSH login is for {wanted}"
                );
                s.approvals.complete(code, Err(message.clone()));
                return page(StatusCode::FORBIDDEN, "Not approved", &message);
            }
            s.approvals.complete(
                code,
                Ok(Approved {
                    user: user.to_owned(),
                    roles,
                    mfa,
                    payload: None,
                }),
            );
            page(
                StatusCode::OK,
                "SSH login approved",
                &format!("Signed in as {user}; your SSH login goes on. You can close this window."),
            )
        }
        ApprovalKind::Cli {
            user: Some(wanted), ..
        } if wanted != user => {
            let message = format!(
                "single sign-on was completed as {user}, but `vestibule login` asked for {wanted}"
            );
            s.approvals.complete(code, Err(message.clone()));
            page(StatusCode::FORBIDDEN, "Not logged in", &message)
        }
        ApprovalKind::Cli {
            public_key,
            ttl_secs,
            ..
        } => match issue(s, user, &roles, &public_key, ttl_secs, mfa, peer).await {
            Ok(certificate) => {
                let payload = serde_json::to_value(&certificate).ok();
                s.approvals.complete(
                    code,
                    Ok(Approved {
                        user: user.to_owned(),
                        roles,
                        mfa,
                        payload,
                    }),
                );
                page(
                    StatusCode::OK,
                    "Logged in",
                    &format!(
                        "Signed in as {user}; `vestibule login` has your certificate (serial {}). You can close this window.",
                        certificate.serial
                    ),
                )
            }
            Err(message) => {
                s.approvals.complete(code, Err(message.clone()));
                page(StatusCode::FORBIDDEN, "Not logged in", &message)
            }
        },
    }
}

/// Create or update the person: a new user when auto-provisioning allows it,
/// and the role grants the groups map to. Returns the person's roles now.
async fn provision(s: &SsoApiSettings, identity: &Identity) -> Result<Vec<String>, SsoError> {
    let user = &identity.user;
    let settings = s.client.settings();
    let internal = |e: vestibule_store::StoreError| {
        tracing::error!(error = %e, "single sign-on: database error");
        SsoError::NotAllowed("internal error, see the gateway log".into())
    };
    let exists = s
        .store
        .user_credentials(user)
        .await
        .map_err(internal)?
        .is_some();
    if !exists {
        if !settings.auto_provision {
            return Err(SsoError::NotAllowed(format!(
                "{user} is not a Vestibule user and auto-provisioning is off; ask an administrator to add them"
            )));
        }
        // A concurrent first login may have added them already; that is fine.
        if let Err(error) = s.store.add_user(user, &[], None).await {
            tracing::debug!(%user, %error, "single sign-on: user not added");
        } else {
            tracing::info!(%user, subject = %identity.subject, "single sign-on: user provisioned");
        }
    }
    let current = s.store.role_names_of(user).await.map_err(internal)?;
    let plan = vestibule_sso::plan_role_sync(&settings.groups_to_roles, &identity.groups, &current);
    for role in &plan.grant {
        match s.store.grant_role(role, user).await {
            Ok(()) => tracing::info!(%user, %role, "single sign-on: role granted from groups"),
            Err(error) => {
                tracing::warn!(%user, %role, %error, "single sign-on: cannot grant a mapped role (does the role exist?)")
            }
        }
    }
    for role in &plan.revoke {
        if s.store.revoke_role(role, user).await.is_ok() {
            tracing::info!(%user, %role, "single sign-on: role revoked (no longer in a mapped group)");
        }
    }
    s.store.role_names_of(user).await.map_err(internal)
}

/// Certify `public_key` for `user` (as `/v1/login` does); `Err` is a message
/// for the person. A multi-factor sign-on (`amr`) gets the key ID
/// `vestibule:NAME:sso+mfa`, which the SSH front end takes as both factors;
/// any other still leads to the TOTP prompt where a second factor is due.
#[allow(clippy::too_many_arguments)]
async fn issue(
    s: &SsoApiSettings,
    user: &str,
    roles: &[String],
    public_key: &str,
    ttl_secs: Option<u64>,
    mfa: bool,
    peer: SocketAddr,
) -> Result<LoginResponse, String> {
    let method = if mfa { "sso+mfa" } else { "sso" };
    let internal = |error: String| {
        tracing::error!(%error, "single sign-on: certificate not issued");
        "internal error, see the gateway log".to_owned()
    };
    let subject_key = PublicKey::from_openssh(public_key.trim())
        .map_err(|_| "public_key is not an OpenSSH public key".to_owned())?;
    let ttl = ttl_secs.map_or(s.default_login_ttl, Duration::from_secs);
    let lock = s
        .store
        .login_lock(user, roles)
        .await
        .map_err(|e| internal(e.to_string()))?;
    if let Some(lock) = lock {
        tracing::info!(%user, %peer, lock = %lock.id, "single sign-on login refused: locked");
        return Err(lock.message());
    }
    let issued = crate::certify::person(
        &s.user_ca,
        &s.store,
        user,
        &subject_key,
        format!("vestibule:{user}:{method}"),
        ttl,
        None,
    )
    .await
    .map_err(|e| internal(e.to_string()))?;
    tracing::info!(%user, %peer, serial = issued.serial, "single sign-on certificate issued");
    crate::audit::login_certified(
        &s.audit,
        user,
        peer,
        method,
        issued.serial,
        issued.valid_before,
    );
    Ok(LoginResponse {
        certificate: issued
            .certificate
            .to_openssh()
            .map_err(|e| internal(e.to_string()))?,
        serial: issued.serial,
        valid_before: issued.valid_before,
    })
}

/// `POST /v1/login/sso`: register a command-line login and give its link.
async fn cli_start(
    State(s): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(request): Json<SsoLoginRequest>,
) -> Response {
    if PublicKey::from_openssh(request.public_key.trim()).is_err() {
        return json_error(
            StatusCode::BAD_REQUEST,
            "public_key is not an OpenSSH public key",
        );
    }
    let ttl = request.ttl_secs.unwrap_or(s.default_login_ttl.as_secs());
    if ttl == 0 || ttl > s.max_login_ttl.as_secs() {
        return json_error(
            StatusCode::BAD_REQUEST,
            format!(
                "ttl_secs must be between 1 and {}",
                s.max_login_ttl.as_secs()
            ),
        );
    }
    // Fail fast, with the break-glass hint, when the IdP is down.
    if let Err(error) = s.client.check_reachable().await {
        log_error(&error, peer);
        return json_error(status_of(&error), error.to_string());
    }
    if let Some(user) = &request.user
        && let Err(error) = vestibule_core::validate_name("user", user)
    {
        return json_error(StatusCode::BAD_REQUEST, error.to_string());
    }
    let kind = ApprovalKind::Cli {
        user: request.user,
        public_key: request.public_key,
        ttl_secs: Some(ttl),
        peer: peer.ip().to_string(),
    };
    match s.approvals.create(kind, s.approval_timeout) {
        Ok(pending) => Json(SsoLoginResponse {
            url: format!("{}/auth/approve/{}", s.base_url, pending.code),
            code: pending.code,
            expires_in_secs: pending.expires_in.as_secs(),
        })
        .into_response(),
        Err(error) => json_error(status_of(&error), error.to_string()),
    }
}

/// `POST /v1/login/sso/wait`: the certificate, once the browser side is done.
async fn cli_wait(State(s): St, Json(request): Json<SsoWaitRequest>) -> Response {
    match s.approvals.kind(&request.code) {
        Some(ApprovalKind::Cli { .. }) => {}
        Some(ApprovalKind::Ssh { .. }) => {
            return json_error(StatusCode::BAD_REQUEST, "not a command-line login code");
        }
        None => return json_error(StatusCode::NOT_FOUND, SsoError::BadState.to_string()),
    }
    match s.approvals.wait(&request.code, s.approval_timeout).await {
        Ok(Approved {
            payload: Some(payload),
            ..
        }) => Json(payload).into_response(),
        Ok(_) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no certificate was issued",
        ),
        Err(error) => json_error(status_of(&error), error.to_string()),
    }
}
