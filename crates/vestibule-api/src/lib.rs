//! Vestibule's HTTP API, served over HTTPS beside the SSH gateway.
//!
//! Owns: the HTTP routes and their JSON, TLS serving, and the login flow that
//! hands people a short-lived SSH user certificate (`vestibule login`): a person
//! proves who they are with their password or with a key the gateway already
//! knows (a signed challenge), and gets their fresh public key certified.
//! Must not touch: SSH sessions, authorization of targets (a certificate says who
//! the person is; what they may reach is decided at each session), key files
//! (the binary passes TLS and CA material in).

mod audit;
mod breakglass;
mod certify;
mod challenge;
mod enrol;
mod login;
mod sso;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use vestibule_ca::LiveKeyring;
use vestibule_store::Store;

pub use breakglass::BreakglassLoginRequest;
pub use enrol::EnrollOffer;
pub use login::{
    ChallengeRequest, ChallengeResponse, ENROLL_REQUIRED, KeyProof, LOGIN_NAMESPACE, LoginRequest,
    LoginResponse,
};
pub use sso::{SsoApiSettings, SsoLoginRequest, SsoLoginResponse, SsoWaitRequest, sso_router};

/// What the API needs.
pub struct ApiSettings {
    pub store: Store,
    pub user_ca: Arc<LiveKeyring>,
    /// Certificate lifetime when the person asks for none.
    pub default_login_ttl: Duration,
    /// The longest certificate a person may get.
    pub max_login_ttl: Duration,
    /// Brute-force limits, shared with the SSH front end.
    pub limiter: Arc<vestibule_identity::limiter::Limiter>,
    /// Everyone needs a TOTP second factor.
    pub require_mfa: bool,
    /// With `require_mfa`, people without one enrol at their first login.
    pub enroll_at_first_login: bool,
    /// Where logins and the certificates they give are recorded.
    pub audit: Option<vestibule_audit::AuditHandle>,
}

pub(crate) struct ApiState {
    settings: ApiSettings,
    challenges: challenge::Challenges,
    enrolments: enrol::PendingEnrolments,
}

/// The API's routes.
pub fn router(settings: ApiSettings) -> Router {
    let state = Arc::new(ApiState {
        settings,
        challenges: challenge::Challenges::default(),
        enrolments: enrol::PendingEnrolments::default(),
    });
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/v1/login/challenge", post(login::challenge))
        .route("/v1/login", post(login::login))
        .route("/v1/login/breakglass", post(breakglass::login))
        .with_state(state)
}

/// Serve `router` over TLS on `listener` until it fails.
pub async fn serve_tls(
    listener: std::net::TcpListener,
    tls: rustls::ServerConfig,
    router: Router,
) -> std::io::Result<()> {
    let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls));
    axum_server::from_tcp_rustls(listener, config)
        .serve(router.into_make_service_with_connect_info::<SocketAddr>())
        .await
}
