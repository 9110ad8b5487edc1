//! `POST /v1/login/challenge` and `POST /v1/login`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use russh::keys::ssh_key::{PublicKey, SshSig};
use serde::{Deserialize, Serialize};

use crate::ApiState;

/// The SSHSIG namespace of login key proofs, so a signature made for anything
/// else can never be replayed here.
pub const LOGIN_NAMESPACE: &str = "vestibule-login@vestibule";

#[derive(Debug, Serialize, Deserialize)]
pub struct ChallengeRequest {
    pub user: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ChallengeResponse {
    pub challenge: String,
}

/// Proof of holding a key the gateway knows: an SSHSIG over a challenge.
#[derive(Debug, Serialize, Deserialize)]
pub struct KeyProof {
    /// The registered public key (OpenSSH line).
    pub public_key: String,
    pub challenge: String,
    /// SSHSIG PEM (`-----BEGIN SSH SIGNATURE-----`), namespace [`LOGIN_NAMESPACE`].
    pub signature: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LoginRequest {
    pub user: String,
    /// The new public key to certify (OpenSSH line).
    pub public_key: String,
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub key_proof: Option<KeyProof>,
    /// The current TOTP code, for people with a second factor.
    #[serde(default)]
    pub totp_code: Option<String>,
    /// The id of a second factor the gateway offered (the `enroll` of a 401
    /// answer), with `totp_code` from its secret: enrols and logs in.
    #[serde(default)]
    pub enroll_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LoginResponse {
    /// The OpenSSH certificate (`ssh-ed25519-cert-v01@openssh.com AAAA...`).
    pub certificate: String,
    pub serial: u64,
    pub valid_before: u64,
}

/// An error reply: a status and one line for the person.
pub(crate) struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

/// Why a login did not complete: an error, or a second factor to enrol.
pub(crate) enum Refusal {
    Error(ApiError),
    Enroll(crate::enrol::EnrollOffer),
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Self::Error(error)
    }
}

/// The message of the 401 answer that offers a second factor (the client
/// recognises the answer by its `enroll` field).
pub const ENROLL_REQUIRED: &str = "a second factor is required: scan the offered code with an authenticator app and give a code from it";

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Self::Error(error) => error.into_response(),
            Self::Enroll(offer) => (
                StatusCode::UNAUTHORIZED,
                [(axum::http::header::CACHE_CONTROL, "no-store")],
                Json(serde_json::json!({ "error": ENROLL_REQUIRED, "enroll": offer })),
            )
                .into_response(),
        }
    }
}

pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

pub(crate) fn internal(error: impl std::fmt::Display) -> ApiError {
    tracing::error!(%error, "login failed inside the gateway");
    ApiError(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error, see the gateway log".into(),
    )
}

/// The same answer for every failed proof, so it tells nothing about which part
/// failed or whether the user exists.
pub(crate) fn denied() -> ApiError {
    ApiError(StatusCode::UNAUTHORIZED, "invalid credentials".into())
}

pub(crate) async fn challenge(
    State(state): State<Arc<ApiState>>,
    Json(request): Json<ChallengeRequest>,
) -> Result<Json<ChallengeResponse>, ApiError> {
    vestibule_core::validate_name("user", &request.user).map_err(|e| bad_request(e.to_string()))?;
    let challenge = state.challenges.issue(&request.user).ok_or_else(|| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many logins in progress".into(),
        )
    })?;
    Ok(Json(ChallengeResponse { challenge }))
}

/// The first factor a login request uses, for the audit trail.
fn method_of(request: &LoginRequest) -> &'static str {
    if request.password.is_some() {
        "password"
    } else {
        "publickey"
    }
}

pub(crate) async fn login(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(request): Json<LoginRequest>,
) -> Result<Json<LoginResponse>, Refusal> {
    let user = &request.user;
    vestibule_core::validate_name("user", user).map_err(|e| bad_request(e.to_string()))?;
    let subject_key = PublicKey::from_openssh(request.public_key.trim())
        .map_err(|_| bad_request("public_key is not an OpenSSH public key"))?;
    let settings = &state.settings;
    let ttl = Duration::from_secs(
        request
            .ttl_secs
            .unwrap_or(settings.default_login_ttl.as_secs()),
    );
    if ttl.is_zero() || ttl > settings.max_login_ttl {
        return Err(bad_request(format!(
            "ttl_secs must be between 1 and {}",
            settings.max_login_ttl.as_secs()
        ))
        .into());
    }
    // A lockout answers like a wrong password, so it says nothing about the account.
    if settings.limiter.check(Some(peer.ip()), user).is_err() {
        tracing::info!(%user, %peer, "login refused: locked out");
        crate::audit::login_refused(
            &settings.audit,
            user,
            peer,
            method_of(&request),
            "locked out",
        );
        return Err(denied().into());
    }
    let proven = match (&request.password, &request.key_proof) {
        (Some(password), None) => {
            vestibule_identity::verify_password(&settings.store, user, password.clone())
                .await
                .map_err(internal)?
        }
        (None, Some(proof)) => check_key_proof(&state, user, proof).await?,
        _ => return Err(bad_request("give exactly one of password and key_proof").into()),
    };
    if !proven {
        tracing::info!(%user, %peer, "login refused: invalid credentials");
        crate::audit::login_refused(
            &settings.audit,
            user,
            peer,
            method_of(&request),
            "invalid credentials",
        );
        slow_down(&state, peer, user).await;
        return Err(denied().into());
    }
    let with_totp = second_factor(&state, peer, &request).await?;
    settings.limiter.success(user);
    // Only after the credentials are proven, so a lock does not reveal who exists.
    let roles = settings.store.role_names_of(user).await.map_err(internal)?;
    let lock = settings
        .store
        .login_lock(user, &roles)
        .await
        .map_err(internal)?;
    if let Some(lock) = lock {
        tracing::info!(%user, %peer, lock = %lock.id, "login refused: locked");
        crate::audit::login_refused(
            &settings.audit,
            user,
            peer,
            method_of(&request),
            &lock.message(),
        );
        return Err(ApiError(StatusCode::FORBIDDEN, lock.message()).into());
    }
    let key_id = if with_totp {
        format!(
            "vestibule:{user}:{}",
            vestibule_identity::mfa::LOGIN_WITH_TOTP
        )
    } else {
        format!("vestibule:{user}:login")
    };
    let issued = crate::certify::person(
        &settings.user_ca,
        &settings.store,
        user,
        &subject_key,
        key_id,
        ttl,
        None,
    )
    .await
    .map_err(internal)?;
    tracing::info!(%user, %peer, serial = issued.serial, "login certificate issued");
    crate::audit::login_certified(
        &settings.audit,
        user,
        peer,
        method_of(&request),
        issued.serial,
        issued.valid_before,
    );
    Ok(Json(LoginResponse {
        certificate: issued.certificate.to_openssh().map_err(internal)?,
        serial: issued.serial,
        valid_before: issued.valid_before,
    }))
}

/// Count a failure and wait the backoff before answering it.
pub(crate) async fn slow_down(state: &ApiState, peer: SocketAddr, user: &str) {
    let delay = state.settings.limiter.failure(Some(peer.ip()), user);
    tokio::time::sleep(delay).await;
}

/// After the first factor: the TOTP code, when the person has one or everyone
/// must; whether one was verified. These answers may say a code is missing, or
/// offer a second factor to enrol: the first factor is proven.
async fn second_factor(
    state: &ApiState,
    peer: SocketAddr,
    request: &LoginRequest,
) -> Result<bool, Refusal> {
    let user = request.user.as_str();
    let code = request.totp_code.as_deref();
    let store = &state.settings.store;
    let enrolled = vestibule_identity::mfa::enrolled(store, user)
        .await
        .map_err(internal)?;
    if !enrolled {
        let required = vestibule_identity::mfa::required(store, user, state.settings.require_mfa)
            .await
            .map_err(internal)?;
        if required && state.settings.enroll_at_first_login {
            return enrol(state, peer, request).await;
        }
        if required {
            tracing::info!(%user, %peer, "login refused: no second factor enrolled");
            crate::audit::login_refused(
                &state.settings.audit,
                user,
                peer,
                "totp",
                "a second factor is required and none is enrolled",
            );
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                "a second factor is required and none is enrolled; ask an administrator (vestibule user mfa enroll)".into(),
            ).into());
        }
        return Ok(false);
    }
    let Some(code) = code.filter(|c| !c.trim().is_empty()) else {
        return Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "a verification code is required: give totp_code (vestibule login --totp-code CODE)"
                .into(),
        )
        .into());
    };
    let valid = vestibule_identity::mfa::verify_code(store, user, code)
        .await
        .map_err(internal)?;
    if !valid {
        tracing::info!(%user, %peer, "login refused: wrong or reused verification code");
        crate::audit::login_refused(
            &state.settings.audit,
            user,
            peer,
            "totp",
            "wrong or reused verification code",
        );
        slow_down(state, peer, user).await;
        return Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "invalid or already used verification code".into(),
        )
        .into());
    }
    Ok(true)
}

/// Enrolment at first login: offer a secret (kept here), or finish the offer
/// named by `enroll_id` when `totp_code` is a code from its secret.
async fn enrol(
    state: &ApiState,
    peer: SocketAddr,
    request: &LoginRequest,
) -> Result<bool, Refusal> {
    let user = request.user.as_str();
    let settings = &state.settings;
    let (Some(id), Some(code)) = (&request.enroll_id, &request.totp_code) else {
        let offer = state.enrolments.offer(user).ok_or_else(|| {
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many logins in progress".into(),
            )
        })?;
        tracing::info!(%user, %peer, "login: second factor offered for enrolment");
        return Err(Refusal::Enroll(offer));
    };
    let Some(enrolment) = state.enrolments.get(id, user) else {
        crate::audit::login_refused(
            &settings.audit,
            user,
            peer,
            "totp",
            "unknown or expired enrolment",
        );
        return Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "the offered second factor is unknown or expired; log in again".into(),
        )
        .into());
    };
    let confirmed = enrolment
        .confirm(&settings.store, code)
        .await
        .map_err(internal)?;
    if !confirmed {
        tracing::info!(%user, %peer, "login refused: wrong code while enrolling");
        crate::audit::login_refused(
            &settings.audit,
            user,
            peer,
            "totp",
            "wrong verification code while enrolling a second factor",
        );
        slow_down(state, peer, user).await;
        return Err(ApiError(StatusCode::UNAUTHORIZED, "invalid verification code".into()).into());
    }
    state.enrolments.finish(id);
    tracing::info!(%user, %peer, "second factor enrolled at login");
    crate::audit::mfa_enrolled(&settings.audit, user, peer, method_of(request));
    Ok(true)
}

async fn check_key_proof(state: &ApiState, user: &str, proof: &KeyProof) -> Result<bool, ApiError> {
    if !state.challenges.redeem(&proof.challenge, user) {
        return Ok(false);
    }
    let Ok(key) = PublicKey::from_openssh(proof.public_key.trim()) else {
        return Ok(false);
    };
    let Ok(signature) = SshSig::from_pem(proof.signature.as_bytes()) else {
        return Ok(false);
    };
    if key
        .verify(LOGIN_NAMESPACE, proof.challenge.as_bytes(), &signature)
        .is_err()
    {
        return Ok(false);
    }
    vestibule_identity::has_public_key(&state.settings.store, user, &key)
        .await
        .map_err(internal)
}
