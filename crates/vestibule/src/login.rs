//! `vestibule login`: get a short-lived SSH certificate from a gateway's HTTPS
//! API and put it where ssh finds it (and into the running ssh-agent).

use std::fs::{self, OpenOptions};
use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use russh::keys::ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey};
use vestibule_api::{
    BreakglassLoginRequest, ChallengeRequest, ChallengeResponse, EnrollOffer, KeyProof,
    LOGIN_NAMESPACE, LoginRequest, LoginResponse, SsoLoginRequest, SsoLoginResponse,
    SsoWaitRequest,
};

use crate::cli::LoginArgs;
use crate::tls::PinnedCertificate;

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Parse `8h`, `30m`, `90s` or plain seconds.
pub(crate) fn parse_ttl(text: &str) -> Result<u64> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits
        .parse()
        .with_context(|| format!("invalid duration {text:?}"))?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => bail!("invalid duration {text:?}: use s, m, h or d"),
    };
    Ok(n.saturating_mul(factor))
}

/// The pinned fingerprint: given, or remembered from an earlier login.
fn pinned_fingerprint(args: &LoginArgs, known: &Path) -> Result<String> {
    let remembered = fs::read_to_string(known).unwrap_or_default();
    let stored = remembered
        .lines()
        .filter_map(|line| line.split_once(' '))
        .find(|(proxy, _)| *proxy == args.proxy)
        .map(|(_, fp)| fp.trim().to_owned());
    match (&args.fingerprint, stored) {
        (Some(given), Some(stored)) if *given != stored => bail!(
            "the fingerprint given for {} differs from the one remembered in {} ({stored}); remove that line if the gateway's certificate really changed",
            args.proxy,
            known.display()
        ),
        (Some(given), _) => Ok(given.clone()),
        (None, Some(stored)) => Ok(stored),
        (None, None) => bail!(
            "no TLS fingerprint known for {}: pass --fingerprint SHA256:... as `vestibule serve` prints it",
            args.proxy
        ),
    }
}

fn remember(known: &Path, proxy: &str, fingerprint: &str) -> Result<()> {
    let existing = fs::read_to_string(known).unwrap_or_default();
    if existing
        .lines()
        .any(|l| l.split_once(' ').is_some_and(|(p, _)| p == proxy))
    {
        return Ok(());
    }
    if let Some(parent) = known.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(known)?;
    writeln!(file, "{proxy} {fingerprint}")?;
    Ok(())
}

fn client(fingerprint: String) -> Result<reqwest::Client> {
    client_with_timeout(fingerprint, std::time::Duration::from_secs(30))
}

fn client_with_timeout(
    fingerprint: String,
    timeout: std::time::Duration,
) -> Result<reqwest::Client> {
    let tls = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCertificate::new(fingerprint)))
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(timeout)
        .build()
        .context("cannot build the HTTPS client")
}

/// A refusal from the gateway: its status and JSON body.
struct Refused {
    status: reqwest::StatusCode,
    body: serde_json::Value,
}

impl Refused {
    fn into_error(self) -> anyhow::Error {
        let message = self.body["error"].as_str().unwrap_or("no explanation");
        anyhow::anyhow!("login refused ({}): {message}", self.status)
    }

    /// The second factor the gateway offers to enrol, if that is why.
    fn enroll_offer(&self) -> Option<EnrollOffer> {
        serde_json::from_value(self.body.get("enroll")?.clone()).ok()
    }
}

async fn post_answer<Req: serde::Serialize, Resp: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    body: &Req,
) -> Result<std::result::Result<Resp, Refused>> {
    let response = client
        .post(url)
        .json(body)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    if !status.is_success() {
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        return Ok(Err(Refused { status, body }));
    }
    Ok(Ok(response.json().await.with_context(|| {
        format!("unexpected answer from {url}")
    })?))
}

async fn post<Req: serde::Serialize, Resp: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    body: &Req,
) -> Result<Resp> {
    post_answer(client, url, body)
        .await?
        .map_err(Refused::into_error)
}

/// Replace `path` with a new file of `mode` (never writing through an old one).
fn write_private(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let _ = fs::remove_file(path);
    crate::datadir::write_new_file(path, bytes, mode)
}

pub async fn run(args: LoginArgs) -> Result<()> {
    let base = home().join(".vestibule");
    let known = base.join("known_proxies");
    let fingerprint = pinned_fingerprint(&args, &known)?;
    let http = client(fingerprint.clone())?;
    let api = format!("https://{}", args.proxy);
    let key =
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).context("cannot make a key")?;
    let public_key = key.public_key().to_openssh()?;
    let ttl_secs = args.ttl.as_deref().map(parse_ttl).transpose()?;

    let login = if args.sso {
        sso_login(&api, &fingerprint, &args, public_key, ttl_secs).await?
    } else if args.breakglass {
        breakglass_login(&http, &api, &args, public_key, ttl_secs).await?
    } else {
        password_or_key_login(&http, &api, &args, public_key, ttl_secs).await?
    };
    remember(&known, &args.proxy, &fingerprint)?;
    save(&args, &base, &key, &login)
}

/// A signature over a fresh challenge with the registered key at `path`.
async fn prove_key(http: &reqwest::Client, api: &str, user: &str, path: &Path) -> Result<KeyProof> {
    let challenge: ChallengeResponse = post(
        http,
        &format!("{api}/v1/login/challenge"),
        &ChallengeRequest {
            user: user.to_owned(),
        },
    )
    .await?;
    let pem = zeroize::Zeroizing::new(
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    let identity = PrivateKey::from_openssh(pem.as_bytes()).with_context(|| {
        format!(
            "cannot parse {} (encrypted keys are not supported yet)",
            path.display()
        )
    })?;
    let signature = identity
        .sign(
            LOGIN_NAMESPACE,
            HashAlg::Sha512,
            challenge.challenge.as_bytes(),
        )
        .context("cannot sign the login challenge")?;
    Ok(KeyProof {
        public_key: identity.public_key().to_openssh()?,
        challenge: challenge.challenge,
        signature: signature.to_pem(LineEnding::LF)?,
    })
}

/// Prove who you are with a password (standard input) or a registered key.
async fn password_or_key_login(
    http: &reqwest::Client,
    api: &str,
    args: &LoginArgs,
    public_key: String,
    ttl_secs: Option<u64>,
) -> Result<LoginResponse> {
    let (password, key_proof) = match &args.identity {
        Some(path) => (None, Some(prove_key(http, api, &args.user, path).await?)),
        None => {
            let mut line = zeroize::Zeroizing::new(String::new());
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the password")?;
            (Some(line.trim_end_matches(['\r', '\n']).to_owned()), None)
        }
    };
    // Scripts give the code on the line after the password; people at a
    // terminal are asked for it when the gateway says one is needed.
    let interactive = std::io::stdin().is_terminal();
    let totp_code = match (&args.totp_code, &password) {
        (Some(code), _) => Some(code.trim().to_owned()),
        (None, Some(_)) if !interactive => read_code()?,
        _ => None,
    };
    let mut request = LoginRequest {
        user: args.user.clone(),
        public_key,
        ttl_secs,
        password,
        key_proof,
        totp_code,
        enroll_id: None,
    };
    let url = format!("{api}/v1/login");
    let refused = match post_answer(http, &url, &request).await? {
        Ok(login) => return Ok(login),
        Err(refused) => refused,
    };
    let message = refused.body["error"].as_str().unwrap_or_default();
    if let Some(offer) = refused.enroll_offer() {
        show_enrolment(&args.user, &offer);
        eprint!("Verification code: ");
        request.totp_code = read_code()?;
        request.enroll_id = Some(offer.id);
    } else if interactive
        && request.password.is_some()
        && request.totp_code.is_none()
        && message.contains("verification code is required")
    {
        eprint!("Verification code: ");
        request.totp_code = read_code()?;
    } else {
        return Err(refused.into_error());
    }
    // A challenge is single-use: a key login signs a fresh one.
    if let Some(path) = &args.identity {
        request.key_proof = Some(prove_key(http, api, &args.user, path).await?);
    }
    post(http, &url, &request).await
}

/// The second factor the gateway offers: a QR code and the URI to put in an
/// authenticator app.
fn show_enrolment(user: &str, offer: &EnrollOffer) {
    println!("A second factor is required and {user} has none yet.");
    println!("Scan this with an authenticator app:");
    println!();
    if let Some(qr) = vestibule_identity::mfa::qr_text(&offer.otpauth_uri) {
        println!("{qr}");
    }
    println!("{}", offer.otpauth_uri);
    println!();
    println!("Then enter the code the app shows to finish enrolling.");
    let _ = std::io::stdout().flush();
}

/// Redeem a break-glass token for a certificate.
async fn breakglass_login(
    http: &reqwest::Client,
    api: &str,
    args: &LoginArgs,
    public_key: String,
    ttl_secs: Option<u64>,
) -> Result<LoginResponse> {
    let token = match std::env::var("VESTIBULE_BREAKGLASS_TOKEN") {
        Ok(token) if !token.trim().is_empty() => zeroize::Zeroizing::new(token.trim().to_owned()),
        _ => {
            if std::io::stdin().is_terminal() {
                eprint!("Break-glass token: ");
            }
            let mut line = zeroize::Zeroizing::new(String::new());
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the break-glass token")?;
            zeroize::Zeroizing::new(line.trim().to_owned())
        }
    };
    let request = BreakglassLoginRequest {
        user: args.user.clone(),
        token: token.to_string(),
        public_key,
        ttl_secs,
    };
    let answer = post(http, &format!("{api}/v1/login/breakglass"), &request).await;
    // The request held a copy of the token.
    let mut request = request;
    zeroize::Zeroize::zeroize(&mut request.token);
    answer
}

/// One line of standard input, trimmed; `None` when empty.
fn read_code() -> Result<Option<String>> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the verification code")?;
    Ok(Some(line.trim().to_owned()).filter(|c| !c.is_empty()))
}

/// Single sign-on: register the login, show the link, wait for the browser side.
async fn sso_login(
    api: &str,
    fingerprint: &str,
    args: &LoginArgs,
    public_key: String,
    ttl_secs: Option<u64>,
) -> Result<LoginResponse> {
    let http = client(fingerprint.to_owned())?;
    let start: SsoLoginResponse = post(
        &http,
        &format!("{api}/v1/login/sso"),
        &SsoLoginRequest {
            user: Some(args.user.clone()),
            public_key,
            ttl_secs,
        },
    )
    .await?;
    println!("Open {} to log in", start.url);
    open_browser(&start.url);
    // One long wait: the gateway answers as soon as the browser side is done.
    let waiting = client_with_timeout(
        fingerprint.to_owned(),
        std::time::Duration::from_secs(start.expires_in_secs + 30),
    )?;
    post(
        &waiting,
        &format!("{api}/v1/login/sso/wait"),
        &SsoWaitRequest { code: start.code },
    )
    .await
}

/// Try to open `url` in the person's browser when there is a desktop.
fn open_browser(url: &str) {
    let desktop =
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    if !desktop {
        return;
    }
    let _ = std::process::Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

/// Write the key and certificate, and hand them to the ssh-agent.
fn save(args: &LoginArgs, base: &Path, key: &PrivateKey, login: &LoginResponse) -> Result<()> {
    let dir = args.out_dir.clone().unwrap_or_else(|| base.join("keys"));
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let stem = format!("{}@{}", args.user, args.proxy.replace([':', '/'], "_"));
    let key_path = dir.join(&stem);
    let cert_path = dir.join(format!("{stem}-cert.pub"));
    write_private(&key_path, key.to_openssh(LineEnding::LF)?.as_bytes(), 0o600)?;
    write_private(
        &cert_path,
        format!("{}\n", login.certificate).as_bytes(),
        0o644,
    )?;
    println!(
        "Logged in as {} (certificate serial {}).",
        args.user, login.serial
    );
    println!(
        "Key: {}\nCertificate: {}",
        key_path.display(),
        cert_path.display()
    );
    add_to_agent(&key_path, login.valid_before);
    Ok(())
}

/// Put the key and certificate into the running ssh-agent, for as long as the
/// certificate is valid, if there is an agent.
fn add_to_agent(key: &Path, valid_before: u64) {
    if std::env::var_os("SSH_AUTH_SOCK").is_none() {
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let lifetime = valid_before.saturating_sub(now).max(1).to_string();
    match std::process::Command::new("ssh-add")
        .arg("-q")
        .arg("-t")
        .arg(&lifetime)
        .arg(key)
        .status()
    {
        Ok(status) if status.success() => println!("Added to ssh-agent for {lifetime}s."),
        _ => eprintln!(
            "note: could not add the key to ssh-agent; use -i {}",
            key.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_ttl;

    #[test]
    fn durations() {
        assert_eq!(parse_ttl("8h").unwrap(), 28800);
        assert_eq!(parse_ttl("30m").unwrap(), 1800);
        assert_eq!(parse_ttl("45").unwrap(), 45);
        assert!(parse_ttl("8y").is_err());
        assert!(parse_ttl("h").is_err());
    }
}
