//! The OpenID Connect relying party: discovery, the authorization-code flow
//! with PKCE (S256), state and nonce, id_token validation and userinfo.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::SsoError;
use crate::jwt;

/// How long a started browser login may take.
const LOGIN_WINDOW: Duration = Duration::from_secs(600);
/// Started logins held at once; past it new ones are refused.
const MAX_PENDING: usize = 4096;
/// Discovery metadata is reused for this long by callbacks.
const METADATA_TTL: Duration = Duration::from_secs(300);
/// Clock skew tolerated on `exp` and `iat`.
const SKEW_SECS: i64 = 60;

/// What single sign-on needs.
pub struct SsoSettings {
    /// The issuer URL; discovery is `ISSUER/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Zeroizing<String>,
    /// Requested scopes; `openid` is always added.
    pub scopes: Vec<String>,
    /// The claim holding the Vestibule user name (e.g. `preferred_username`).
    pub username_claim: String,
    /// The claim holding the person's groups (a list of strings).
    pub groups_claim: String,
    pub groups_to_roles: BTreeMap<String, Vec<String>>,
    /// Create a Vestibule user at first login (otherwise only existing users).
    pub auto_provision: bool,
    /// The callback URL registered at the IdP: `https://HOST:PORT/auth/callback`.
    pub redirect_url: String,
    /// Bound on each request to the IdP (connect and whole request).
    pub http_timeout: Duration,
    /// PEM roots for an IdP whose certificate is not from a public CA.
    pub ca_file: Option<PathBuf>,
    /// `amr` values (RFC 8176) that make a login count as multi-factor.
    pub mfa_amr_values: Vec<String>,
}

/// The `amr` values taken as multi-factor when none are configured: `mfa` and
/// `mca` say so outright; `otp` and `hwk` are second factors IdPs add to a
/// password.
pub const DEFAULT_MFA_AMR_VALUES: &[&str] = &["mfa", "mca", "otp", "hwk"];

/// Whether an id_token's `amr` claim names one of the `accepted` values. A
/// missing or malformed claim is not multi-factor.
pub fn amr_is_mfa(amr: Option<&serde_json::Value>, accepted: &[String]) -> bool {
    match amr {
        Some(serde_json::Value::Array(values)) => values
            .iter()
            .filter_map(|v| v.as_str())
            .any(|v| accepted.iter().any(|a| a == v)),
        _ => false,
    }
}

impl std::fmt::Debug for SsoSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<hidden>")
            .field("scopes", &self.scopes)
            .field("redirect_url", &self.redirect_url)
            .finish_non_exhaustive()
    }
}

/// A started login: send the browser to `url`; `state` also goes into the
/// browser's cookie so the callback can check it is the same browser.
pub struct LoginStart {
    pub url: String,
    pub state: String,
}

/// A person whose single sign-on succeeded.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The Vestibule user name (from `username_claim`, validated).
    pub user: String,
    /// The IdP's stable subject identifier.
    pub subject: String,
    pub groups: Vec<String>,
    /// The id_token's `amr` names a multi-factor method (`mfa_amr_values`).
    pub mfa: bool,
    /// The pending approval this login was started for, if any.
    pub approval: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
}

struct PendingLogin {
    verifier: Zeroizing<String>,
    nonce: Zeroizing<String>,
    expires: Instant,
    approval: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
    access_token: Option<String>,
}

/// The relying party. One per gateway; cheap to share behind an `Arc`.
pub struct OidcClient {
    settings: SsoSettings,
    http: reqwest::Client,
    metadata: Mutex<Option<(Metadata, Instant)>>,
    jwks: Mutex<Option<jwt::Jwks>>,
    pending: Mutex<HashMap<String, PendingLogin>>,
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl OidcClient {
    pub fn new(settings: SsoSettings) -> Result<Self, SsoError> {
        for (what, url) in [
            ("issuer", &settings.issuer),
            ("redirect URL", &settings.redirect_url),
        ] {
            let parsed = url::Url::parse(url)
                .map_err(|e| SsoError::Config(format!("{what} {url:?}: {e}")))?;
            if !matches!(parsed.scheme(), "https" | "http") {
                return Err(SsoError::Config(format!(
                    "{what} {url:?} is not an http(s) URL"
                )));
            }
        }
        if settings.client_id.is_empty() {
            return Err(SsoError::Config("client_id is empty".into()));
        }
        let tls = client_tls(settings.ca_file.as_ref())?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(settings.http_timeout)
            .timeout(settings.http_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SsoError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            settings,
            http,
            metadata: Mutex::new(None),
            jwks: Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
        })
    }

    pub fn settings(&self) -> &SsoSettings {
        &self.settings
    }

    fn unavailable(&self, detail: impl std::fmt::Display) -> SsoError {
        SsoError::Unavailable {
            issuer: self.settings.issuer.clone(),
            detail: detail.to_string(),
        }
    }

    /// GET a JSON document from the IdP; transport failures and server errors
    /// are an outage.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        bearer: Option<&str>,
    ) -> Result<T, SsoError> {
        let mut request = self.http.get(url).header("accept", "application/json");
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.unavailable(format!("GET {url}: {e}")))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(self.unavailable(format!("GET {url}: {status}")));
        }
        if !status.is_success() {
            return Err(SsoError::Invalid(format!("GET {url}: {status}")));
        }
        response
            .json()
            .await
            .map_err(|e| SsoError::Invalid(format!("GET {url}: {e}")))
    }

    /// Fetch the provider's metadata now (so an outage shows at once).
    async fn discover(&self) -> Result<Metadata, SsoError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.settings.issuer.trim_end_matches('/')
        );
        let metadata: Metadata = self.get_json(&url, None).await?;
        if metadata.issuer != self.settings.issuer {
            return Err(SsoError::Invalid(format!(
                "the discovery document names issuer {:?}, not the configured {:?}",
                metadata.issuer, self.settings.issuer
            )));
        }
        *lock(&self.metadata) = Some((metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    async fn metadata(&self) -> Result<Metadata, SsoError> {
        let cached = lock(&self.metadata).clone();
        match cached {
            Some((metadata, at)) if at.elapsed() < METADATA_TTL => Ok(metadata),
            _ => self.discover().await,
        }
    }

    /// Whether the IdP answers its discovery document.
    pub async fn check_reachable(&self) -> Result<(), SsoError> {
        self.discover().await.map(|_| ())
    }

    /// Start a login: a fresh state, nonce and PKCE verifier, and the IdP URL
    /// to send the browser to. Fails fast when the IdP cannot be reached.
    pub async fn start(&self, approval: Option<String>) -> Result<LoginStart, SsoError> {
        let metadata = self.discover().await?;
        let state = random_token();
        let nonce = random_token();
        let verifier = Zeroizing::new(random_token());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let mut scopes = vec!["openid".to_owned()];
        scopes.extend(
            self.settings
                .scopes
                .iter()
                .filter(|s| s.as_str() != "openid")
                .cloned(),
        );
        let mut url = url::Url::parse(&metadata.authorization_endpoint)
            .map_err(|e| SsoError::Invalid(format!("authorization_endpoint: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", &self.settings.redirect_url)
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        let now = Instant::now();
        let mut pending = lock(&self.pending);
        pending.retain(|_, p| p.expires > now);
        if pending.len() >= MAX_PENDING {
            return Err(SsoError::Busy);
        }
        pending.insert(
            state.clone(),
            PendingLogin {
                verifier,
                nonce: Zeroizing::new(nonce),
                expires: now + LOGIN_WINDOW,
                approval,
            },
        );
        Ok(LoginStart {
            url: url.into(),
            state,
        })
    }

    /// Forget a started login (the IdP reported an error for it).
    pub fn discard(&self, state: &str) {
        lock(&self.pending).remove(state);
    }

    /// The approval code a pending login was started for (without using it up).
    pub fn approval_of(&self, state: &str) -> Option<String> {
        lock(&self.pending)
            .get(state)
            .and_then(|p| p.approval.clone())
    }

    /// Finish a login at the callback: `state` is used up whatever happens;
    /// the code is exchanged (with the PKCE verifier), the id_token checked
    /// (signature, issuer, audience, expiry, nonce) and the claims read.
    ///
    /// `iss` is the authorization response's `iss` parameter (RFC 9207), when
    /// the IdP sent one: it must name this IdP.
    pub async fn finish(
        &self,
        state: &str,
        code: &str,
        iss: Option<&str>,
    ) -> Result<Identity, SsoError> {
        let pending = {
            let mut pending = lock(&self.pending);
            pending.remove(state)
        };
        let pending = pending
            .filter(|p| p.expires > Instant::now())
            .ok_or(SsoError::BadState)?;
        let metadata = self.metadata().await?;
        if iss.is_some_and(|iss| iss != metadata.issuer) {
            return Err(SsoError::Invalid(
                "the authorization response names another issuer".into(),
            ));
        }
        let body = Zeroizing::new(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "authorization_code")
                .append_pair("code", code)
                .append_pair("redirect_uri", &self.settings.redirect_url)
                .append_pair("code_verifier", &pending.verifier)
                .finish(),
        );
        let encode =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let response = self
            .http
            .post(&metadata.token_endpoint)
            .basic_auth(
                encode(&self.settings.client_id),
                Some(encode(&self.settings.client_secret)),
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| self.unavailable(format!("token endpoint: {e}")))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(self.unavailable(format!("token endpoint: {status}")));
        }
        if !status.is_success() {
            let error: serde_json::Value = response.json().await.unwrap_or_default();
            let code = error["error"].as_str().unwrap_or("unknown error");
            return Err(SsoError::Refused(format!(
                "the code was not accepted ({status}, {code})"
            )));
        }
        let tokens: TokenResponse = response
            .json()
            .await
            .map_err(|e| SsoError::Invalid(format!("token response: {e}")))?;
        let id_token = Zeroizing::new(
            tokens
                .id_token
                .ok_or_else(|| SsoError::Invalid("no id_token in the token response".into()))?,
        );
        let access_token = tokens.access_token.map(Zeroizing::new);
        let claims = self
            .validate_id_token(&metadata, &id_token, &pending.nonce)
            .await?;
        let subject = claims
            .get("sub")
            .and_then(|s| s.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| SsoError::Invalid("id_token: no sub".into()))?
            .to_owned();
        // From the signed id_token only: userinfo does not speak for the login.
        let mfa = amr_is_mfa(claims.get("amr"), &self.settings.mfa_amr_values);
        let mut all = claims;
        if let (Some(endpoint), Some(token)) = (&metadata.userinfo_endpoint, &access_token) {
            let userinfo: serde_json::Map<String, serde_json::Value> =
                self.get_json(endpoint, Some(token)).await?;
            if userinfo.get("sub").and_then(|s| s.as_str()) != Some(subject.as_str()) {
                return Err(SsoError::Invalid(
                    "userinfo is about another subject than the id_token".into(),
                ));
            }
            for (name, value) in userinfo {
                if name == "amr" {
                    continue;
                }
                all.entry(name).or_insert(value);
            }
        }
        let user = all
            .get(&self.settings.username_claim)
            .and_then(|v| v.as_str())
            .ok_or_else(|| {
                SsoError::NotAllowed(format!(
                    "the identity provider did not send the {} claim (the Vestibule user name)",
                    self.settings.username_claim
                ))
            })?
            .to_owned();
        vestibule_core::validate_name("user", &user).map_err(|e| {
            SsoError::NotAllowed(format!(
                "the {} claim is not a valid Vestibule user name: {e}",
                self.settings.username_claim
            ))
        })?;
        let groups = match all.get(&self.settings.groups_claim) {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .collect(),
            Some(serde_json::Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        };
        Ok(Identity {
            user,
            subject,
            groups,
            mfa,
            approval: pending.approval,
        })
    }

    async fn jwks(&self, metadata: &Metadata, refresh: bool) -> Result<jwt::Jwks, SsoError> {
        if !refresh && let Some(jwks) = lock(&self.jwks).clone() {
            return Ok(jwks);
        }
        let jwks: jwt::Jwks = self.get_json(&metadata.jwks_uri, None).await?;
        *lock(&self.jwks) = Some(jwks.clone());
        Ok(jwks)
    }

    async fn validate_id_token(
        &self,
        metadata: &Metadata,
        token: &str,
        nonce: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, SsoError> {
        let parsed = jwt::parse(token)?;
        if !jwt::supported(&parsed.header.alg) {
            return Err(SsoError::Invalid(format!(
                "id_token: algorithm {:?} is not accepted",
                parsed.header.alg
            )));
        }
        let mut jwks = self.jwks(metadata, false).await?;
        if jwt::select(&jwks, &parsed.header).is_none() {
            // The provider may have rotated its keys.
            jwks = self.jwks(metadata, true).await?;
        }
        let key = jwt::select(&jwks, &parsed.header)
            .ok_or_else(|| SsoError::Invalid("id_token: no matching signing key".into()))?;
        jwt::verify(&parsed, key)?;
        let claims = parsed.claims;
        let invalid = |what: &str| SsoError::Invalid(format!("id_token: {what}"));
        if claims.get("iss").and_then(|v| v.as_str()) != Some(metadata.issuer.as_str()) {
            return Err(invalid("wrong issuer"));
        }
        let client_id = self.settings.client_id.as_str();
        let audience_ok = match claims.get("aud") {
            Some(serde_json::Value::String(aud)) => aud == client_id,
            Some(serde_json::Value::Array(auds)) => {
                auds.iter().any(|a| a.as_str() == Some(client_id))
                    && (auds.len() == 1
                        || claims.get("azp").and_then(|v| v.as_str()) == Some(client_id))
            }
            _ => false,
        };
        if !audience_ok {
            return Err(invalid("wrong audience"));
        }
        if let Some(azp) = claims.get("azp").and_then(|v| v.as_str())
            && azp != client_id
        {
            return Err(invalid("wrong authorized party"));
        }
        let now = now_unix();
        let exp = claims
            .get("exp")
            .and_then(|v| v.as_i64())
            .ok_or_else(|| invalid("no exp"))?;
        if exp + SKEW_SECS < now {
            return Err(invalid("expired"));
        }
        let iat = claims
            .get("iat")
            .and_then(|v| v.as_i64())
            .ok_or_else(|| invalid("no iat"))?;
        if iat - SKEW_SECS > now {
            return Err(invalid("issued in the future"));
        }
        let sent = claims.get("nonce").and_then(|v| v.as_str()).unwrap_or("");
        if !bool::from(sent.as_bytes().ct_eq(nonce.as_bytes())) {
            return Err(invalid("nonce does not match this login"));
        }
        Ok(claims)
    }
}

/// TLS for the IdP: the given roots, else the system's bundle.
fn client_tls(ca_file: Option<&PathBuf>) -> Result<rustls::ClientConfig, SsoError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    const SYSTEM_BUNDLES: [&str; 3] = [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
    ];
    let mut roots = rustls::RootCertStore::empty();
    let bundle = match ca_file {
        Some(path) => Some(path.clone()),
        None => SYSTEM_BUNDLES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists()),
    };
    if let Some(path) = bundle {
        let certs = CertificateDer::pem_file_iter(&path)
            .map_err(|e| SsoError::Config(format!("cannot read {}: {e}", path.display())))?;
        for cert in certs {
            let cert = cert.map_err(|e| SsoError::Config(format!("{}: {e}", path.display())))?;
            // A bundle may hold certificates rustls cannot use; skip those.
            let _ = roots.add(cert);
        }
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod amr_tests {
    use super::*;

    fn accepted() -> Vec<String> {
        DEFAULT_MFA_AMR_VALUES
            .iter()
            .map(|v| (*v).to_owned())
            .collect()
    }

    #[test]
    fn amr_names_multi_factor_logins() {
        let amr = |v: serde_json::Value| amr_is_mfa(Some(&v), &accepted());
        assert!(amr(serde_json::json!(["pwd", "otp"])));
        assert!(amr(serde_json::json!(["mfa"])));
        assert!(amr(serde_json::json!(["hwk", "pin"])));
        assert!(!amr(serde_json::json!(["pwd"])));
        assert!(!amr(serde_json::json!([])));
        // Not a list (malformed): not multi-factor.
        assert!(!amr(serde_json::json!("mfa")));
        assert!(!amr_is_mfa(None, &accepted()));
        // Only configured values count.
        let strict = vec!["mfa".to_owned()];
        assert!(!amr_is_mfa(
            Some(&serde_json::json!(["pwd", "otp"])),
            &strict
        ));
        assert!(amr_is_mfa(Some(&serde_json::json!(["mfa"])), &strict));
    }
}
