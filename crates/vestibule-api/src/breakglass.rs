//! `POST /v1/login/breakglass`: a break-glass token redeemed over HTTPS
//! (`vestibule login --breakglass`) for a short-lived certificate, when the
//! usual way in is unavailable.
//!
//! The same token rules as over SSH: once, before it expires (one conditional
//! update settles concurrent uses), a `breakglass.use` event at level
//! `critical`, and not behind the lockout (anyone can lock a user out on
//! purpose; a 160-bit token cannot be guessed). The certificate has the key
//! ID `vestibule:NAME:breakglass`, so its sessions are break-glass sessions
//! (`context.break_glass`), and it expires no later than the token would have.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use russh::keys::ssh_key::PublicKey;
use serde::{Deserialize, Serialize};
use vestibule_identity::breakglass;
use zeroize::Zeroizing;

use crate::ApiState;
use crate::login::{ApiError, LoginResponse, bad_request, denied, internal, slow_down};

#[derive(Serialize, Deserialize)]
pub struct BreakglassLoginRequest {
    /// The account the token was issued for.
    pub user: String,
    /// The token (`vbg_...`).
    pub token: String,
    /// The new public key to certify (OpenSSH line).
    pub public_key: String,
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

// The token never reaches logs through Debug.
impl std::fmt::Debug for BreakglassLoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakglassLoginRequest")
            .field("user", &self.user)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) async fn login(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(request): Json<BreakglassLoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let BreakglassLoginRequest {
        user,
        token,
        public_key,
        ttl_secs,
    } = request;
    let token = Zeroizing::new(token);
    vestibule_core::validate_name("user", &user).map_err(|e| bad_request(e.to_string()))?;
    let subject_key = PublicKey::from_openssh(public_key.trim())
        .map_err(|_| bad_request("public_key is not an OpenSSH public key"))?;
    let settings = &state.settings;
    let wanted = Duration::from_secs(ttl_secs.unwrap_or(settings.default_login_ttl.as_secs()));
    if wanted.is_zero() || wanted > settings.max_login_ttl {
        return Err(bad_request(format!(
            "ttl_secs must be between 1 and {}",
            settings.max_login_ttl.as_secs()
        )));
    }
    let redeemed = if breakglass::is_token(&token) {
        breakglass::redeem(&settings.store, &user, &token)
            .await
            .map_err(internal)?
    } else {
        None
    };
    let Some(redeemed) = redeemed else {
        tracing::info!(%user, %peer, "break-glass login refused");
        crate::audit::login_refused(
            &settings.audit,
            &user,
            peer,
            "breakglass",
            "invalid, used or expired break-glass token",
        );
        slow_down(&state, peer, &user).await;
        return Err(denied());
    };
    settings.limiter.success(&user);
    tracing::warn!(%user, %peer, token = %redeemed.id, "break-glass token used");
    crate::audit::breakglass_used(&settings.audit, &user, peer, &redeemed.id);
    let left = u64::try_from(redeemed.expires_at.saturating_sub(now_unix())).unwrap_or(0);
    let ttl = wanted.min(Duration::from_secs(left));
    if ttl.is_zero() {
        return Err(denied());
    }
    // Only after the token is proven, so a lock does not reveal who exists.
    let roles = settings
        .store
        .role_names_of(&user)
        .await
        .map_err(internal)?;
    let lock = settings
        .store
        .login_lock(&user, &roles)
        .await
        .map_err(internal)?;
    if let Some(lock) = lock {
        crate::audit::login_refused(&settings.audit, &user, peer, "breakglass", &lock.message());
        return Err(ApiError(StatusCode::FORBIDDEN, lock.message()));
    }
    let issued = crate::certify::person(
        &settings.user_ca,
        &settings.store,
        &user,
        &subject_key,
        format!("vestibule:{user}:{}", breakglass::LOGIN_WITH_BREAKGLASS),
        ttl,
        Some(u64::try_from(redeemed.expires_at).unwrap_or(0)),
    )
    .await
    .map_err(internal)?;
    crate::audit::login_certified(
        &settings.audit,
        &user,
        peer,
        "breakglass",
        issued.serial,
        issued.valid_before,
    );
    Ok(Json(LoginResponse {
        certificate: issued.certificate.to_openssh().map_err(internal)?,
        serial: issued.serial,
        valid_before: issued.valid_before,
    }))
}
