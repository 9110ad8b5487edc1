//! The single sign-on tests' harness (`gateway_sso.rs`): a real OpenID
//! Connect provider (`oidc-provider` from npm, run from tests/oidc/provider.mjs),
//! a gateway that uses it, a scripted browser, and `vestibule login --sso` and
//! `ssh` driven through single sign-on.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{
    self, COMMAND_TIMEOUT, ChildGuard, STARTUP_TIMEOUT, World, free_port, tail_of, temp_dir,
};
use reqwest::Url;

pub const CLIENT_SECRET: &str = "test-client-secret";

/// The installed provider package, or `None` (the test is skipped) when
/// scripts/oidc-provider.sh has not run or node is missing.
pub fn provider_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/oidc-provider");
    let installed = dir.join("node_modules/oidc-provider/package.json").exists();
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if installed && node {
        Some(dir)
    } else {
        eprintln!(
            "\n*** NOTICE: oidc-provider or node not installed (scripts/oidc-provider.sh); SSO test SKIPPED ***\n"
        );
        None
    }
}

/// Spawn `cmd` with stdout piped; lines go to `log` and to the returned channel.
pub fn spawn_reading(cmd: &mut Command, log: &Path) -> (ChildGuard, mpsc::Receiver<String>) {
    let stderr = fs::File::create(log.with_extension("stderr")).expect("stderr log");
    let mut child = ChildGuard::spawn(cmd, Stdio::piped(), Stdio::from(stderr));
    let stdout = child.take_stdout();
    let (tx, rx) = mpsc::channel();
    let log = log.to_owned();
    thread::spawn(move || {
        let mut file = fs::File::create(&log).expect("stdout log");
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            use std::io::Write;
            let _ = writeln!(file, "{line}");
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

pub fn wait_line(rx: &mpsc::Receiver<String>, needle: &str, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return Some(line),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// A World whose gateway serves single sign-on against a running provider.
pub struct SsoWorld {
    // Drop order: our gateway, then the provider, then the World.
    pub serve: ChildGuard,
    pub provider: Option<ChildGuard>,
    pub logs: tempfile::TempDir,
    pub w: World,
    pub https: u16,
    pub ssh: u16,
    pub fingerprint: String,
    pub idp: u16,
}

impl Drop for SsoWorld {
    fn drop(&mut self) {
        self.serve.kill();
        if let Some(provider) = &mut self.provider {
            provider.kill();
        }
        if thread::panicking() {
            for name in [
                "serve.stdout",
                "serve.stderr",
                "provider.stdout",
                "provider.stderr",
            ] {
                eprintln!(
                    "---- {name} (tail) ----\n{}",
                    tail_of(&self.logs.path().join(name), 6000)
                );
            }
        }
    }
}

impl SsoWorld {
    pub fn start(dir: &Path) -> Self {
        Self::start_with(dir, false)
    }

    /// With `require_mfa`, everyone needs a second factor.
    pub fn start_with(dir: &Path, require_mfa: bool) -> Self {
        let mut w = World::new();
        w.gw.stop();
        w.add_role("sso-ops", "*", "root", false);
        w.add_role("sso-dev", "*", "root", false);
        let (https, idp) = (free_port(), free_port());
        let data = w.gw.data_dir();
        let secret = data.join("sso_client_secret");
        fs::write(&secret, format!("{CLIENT_SECRET}\n")).expect("secret");
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).expect("chmod");
        let config = data.join("vestibule.toml");
        let mut text = fs::read_to_string(&config).expect("config");
        if require_mfa {
            text = text.replace("require_mfa = false", "require_mfa = true");
        }
        text.push_str(&format!(
            "\n[sso]\nissuer = \"http://127.0.0.1:{idp}\"\nclient_id = \"vestibule\"\n\
             client_secret_file = \"sso_client_secret\"\nbase_url = \"https://127.0.0.1:{https}\"\n\
             auto_provision = true\nhttp_timeout_secs = 3\napproval_timeout_secs = 60\n\
             mfa_amr_values = [\"mfa\", \"otp\"]\n\
             [sso.groups_to_roles]\nops = [\"sso-ops\"]\ndev = [\"sso-dev\"]\n"
        ));
        fs::write(&config, text).expect("config");

        let logs = temp_dir();
        let mut node = Command::new("node");
        node.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc/provider.mjs"))
            .env("OIDC_PROVIDER_DIR", dir)
            .env("OIDC_PORT", idp.to_string())
            .env(
                "OIDC_REDIRECT_URI",
                format!("https://127.0.0.1:{https}/auth/callback"),
            )
            .env("OIDC_CLIENT_SECRET", CLIENT_SECRET);
        let (provider, provider_out) =
            spawn_reading(&mut node, &logs.path().join("provider.stdout"));
        let listening = wait_line(&provider_out, "listening on", STARTUP_TIMEOUT);
        assert!(
            listening.is_some(),
            "the provider did not start: {}",
            tail_of(&logs.path().join("provider.stderr"), 4000)
        );

        let mut cmd = Command::new(common::vestibule_bin());
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&data)
            .args(["--ssh-listen", "127.0.0.1:0"])
            .args(["--http-listen", &format!("127.0.0.1:{https}")]);
        let (serve, out) = spawn_reading(&mut cmd, &logs.path().join("serve.stdout"));
        let https_line =
            wait_line(&out, "HTTPS listening on ", STARTUP_TIMEOUT).unwrap_or_else(|| {
                panic!(
                    "serve did not start:\n{}",
                    tail_of(&logs.path().join("serve.stderr"), 4000)
                )
            });
        let fingerprint = https_line
            .split_once("TLS certificate ")
            .map(|(_, f)| f.trim_end_matches(')').to_owned())
            .expect("fingerprint");
        let ssh_line = wait_line(&out, "SSH listening on ", STARTUP_TIMEOUT).expect("SSH line");
        let ssh = common::parse_listen_port(&ssh_line).expect("SSH port");
        // Keep draining serve's stdout.
        thread::spawn(move || while out.recv().is_ok() {});
        Self {
            serve,
            provider: Some(provider),
            logs,
            w,
            https,
            ssh,
            fingerprint,
            idp,
        }
    }

    pub fn url(&self, path: &str) -> Url {
        Url::parse(&format!("https://127.0.0.1:{}{path}", self.https)).expect("url")
    }

    pub fn roles_of(&self, user: &str) -> Vec<String> {
        let users = self.w.gw.list_json("user");
        let found = users
            .as_array()
            .expect("user list")
            .iter()
            .find(|u| u["name"] == user)
            .unwrap_or_else(|| panic!("no user {user} in {users}"));
        found["roles"]
            .as_array()
            .expect("roles")
            .iter()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect()
    }
}

/// The gateway's test certificate is self-signed; these tests check SSO, not TLS.
#[derive(Debug)]
pub struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub struct Page {
    pub status: u16,
    pub url: Url,
    pub body: String,
    /// The last gateway /auth/callback URL visited, if any.
    pub callback: Option<Url>,
}

/// A scripted browser: follows redirects itself and keeps cookies per origin.
pub struct Browser {
    pub rt: tokio::runtime::Runtime,
    pub http: reqwest::Client,
    pub cookies: HashMap<String, HashMap<String, String>>,
}

impl Browser {
    pub fn new() -> Self {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("tls versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let http = {
            let _inside = rt.enter();
            reqwest::Client::builder()
                .use_preconfigured_tls(tls)
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client")
        };
        Self {
            rt,
            http,
            cookies: HashMap::new(),
        }
    }

    pub fn origin(url: &Url) -> String {
        format!(
            "{}:{}",
            url.host_str().unwrap_or(""),
            url.port_or_known_default().unwrap_or(0)
        )
    }

    /// One request; returns status, Location and body.
    pub fn send(
        &mut self,
        url: &Url,
        form: Option<&[(&str, &str)]>,
    ) -> (u16, Option<String>, String) {
        let jar = self.cookies.entry(Self::origin(url)).or_default();
        let cookie = jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut request = match form {
            Some(fields) => {
                let body = fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", encode(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                self.http
                    .post(url.clone())
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
            }
            None => self.http.get(url.clone()),
        };
        if !cookie.is_empty() {
            request = request.header("cookie", cookie);
        }
        let response = self
            .rt
            .block_on(async { request.send().await })
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = response.status().as_u16();
        for set in response.headers().get_all("set-cookie") {
            let Ok(set) = set.to_str() else { continue };
            let first = set.split(';').next().unwrap_or("");
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            let lower = set.to_ascii_lowercase();
            let gone = value.is_empty() || lower.contains("max-age=0") || lower.contains("1970");
            if gone {
                jar_remove(&mut self.cookies, url, name);
            } else {
                self.cookies
                    .entry(Self::origin(url))
                    .or_default()
                    .insert(name.trim().to_owned(), value.to_owned());
            }
        }
        let location = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let body = self
            .rt
            .block_on(async { response.text().await })
            .unwrap_or_default();
        (status, location, body)
    }

    /// Go to `url` (POSTing `form` there first), following redirects; `tamper`
    /// may rewrite each redirect target.
    pub fn navigate(
        &mut self,
        mut url: Url,
        form: Option<&[(&str, &str)]>,
        tamper: &dyn Fn(Url) -> Url,
    ) -> Page {
        let mut form = form;
        let mut callback = None;
        for _ in 0..20 {
            if url.path() == "/auth/callback" {
                callback = Some(url.clone());
            }
            let (status, location, body) = self.send(&url, form);
            form = None;
            match location {
                Some(location) if (300..400).contains(&status) => {
                    url = tamper(url.join(&location).expect("redirect URL"));
                }
                _ => {
                    return Page {
                        status,
                        url,
                        body,
                        callback,
                    };
                }
            }
        }
        panic!("too many redirects at {url}");
    }

    /// Start at `start` and log in at the provider as `user` (login and consent
    /// forms), until a page outside the provider.
    pub fn sso(&mut self, start: Url, user: &str, idp: u16, tamper: &dyn Fn(Url) -> Url) -> Page {
        let mut page = self.navigate(start, None, tamper);
        for _ in 0..6 {
            let at_idp =
                page.url.port() == Some(idp) && page.url.path().starts_with("/interaction/");
            if !at_idp {
                return page;
            }
            let url = page.url.clone();
            page = if page.body.contains("name=\"login\"") {
                self.navigate(
                    url,
                    Some(&[("prompt", "login"), ("login", user), ("password", "x")]),
                    tamper,
                )
            } else if page.body.contains("value=\"consent\"") {
                self.navigate(url, Some(&[("prompt", "consent")]), tamper)
            } else {
                panic!("unexpected provider page {url}:\n{}", page.body);
            };
        }
        page
    }
}

pub fn jar_remove(cookies: &mut HashMap<String, HashMap<String, String>>, url: &Url, name: &str) {
    if let Some(jar) = cookies.get_mut(&Browser::origin(url)) {
        jar.remove(name.trim());
    }
}

pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn no_tamper(url: Url) -> Url {
    url
}

/// `vestibule login --sso` as a child process; its first line is the link.
pub fn spawn_cli_login(
    s: &SsoWorld,
    home: &Path,
    user: &str,
) -> (ChildGuard, mpsc::Receiver<String>) {
    let mut cmd = Command::new(common::vestibule_bin());
    cmd.args(["login", "--sso", "--proxy"])
        .arg(format!("127.0.0.1:{}", s.https))
        .args(["--user", user, "--fingerprint", &s.fingerprint])
        .env("HOME", home)
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY");
    spawn_reading(&mut cmd, &home.join(format!("login-{user}.stdout")))
}

pub fn link_of(rx: &mpsc::Receiver<String>) -> Url {
    let line = wait_line(rx, "to log in", COMMAND_TIMEOUT).expect("the login link");
    let link = line
        .split_whitespace()
        .find(|w| w.starts_with("https://"))
        .expect("a link");
    Url::parse(link).expect("link URL")
}

/// `ssh` by single sign-on as alice (no key the gateway knows: the client
/// falls to keyboard-interactive, which shows the link on stderr, merged into
/// stdout here, and waits). The command line, the process, its output lines.
pub fn ssh_by_sso(
    s: &SsoWorld,
    home: &Path,
    command: &str,
) -> (String, ChildGuard, mpsc::Receiver<String>) {
    let known = home.join("known_hosts");
    let line = format!(
        "ssh -F /dev/null -o BatchMode=no -o PreferredAuthentications=keyboard-interactive \
         -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={} -o LogLevel=INFO \
         -p {} alice:web1@127.0.0.1 '{command}' 2>&1 </dev/null",
        known.display(),
        s.ssh
    );
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(&line);
    let (ssh, out) = spawn_reading(&mut cmd, &home.join("ssh.stdout"));
    (line, ssh, out)
}

/// The approval link ssh showed.
pub fn ssh_link(out: &mpsc::Receiver<String>, home: &Path) -> Url {
    wait_line(out, "/auth/approve/", COMMAND_TIMEOUT)
        .and_then(|line| {
            line.split_whitespace()
                .find(|w| w.starts_with("https://"))
                .and_then(|l| Url::parse(l).ok())
        })
        .unwrap_or_else(|| {
            panic!(
                "ssh never showed the link:\n{}",
                tail_of(&home.join("ssh.stdout"), 4000)
            )
        })
}

/// `vestibule login --sso` as alice, completing the browser side; the key.
pub fn sso_cli_login(s: &SsoWorld, home: &Path) -> PathBuf {
    let (mut cli, out) = spawn_cli_login(s, home, "alice");
    let page = Browser::new().sso(link_of(&out), "alice", s.idp, &no_tamper);
    assert_eq!(page.status, 200, "{}", page.body);
    let status = cli
        .wait_timeout(COMMAND_TIMEOUT)
        .expect("the login finishes");
    assert!(
        status.success(),
        "{}",
        tail_of(&home.join("login-alice.stderr"), 4000)
    );
    common::login_key(home)
}
