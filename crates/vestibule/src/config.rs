//! `vestibule.toml`: the gateway's configuration file.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;

/// The file `vestibule init` writes: every setting, commented, at its default.
pub const TEMPLATE: &str = r#"# Vestibule configuration. Paths are relative to this file's directory (the data dir).
# This file is read once, when `vestibule serve` starts: changes take effect at the
# next start (SIGHUP reloads the policy files, not this file). Users, targets and
# roles live in the database and change at once through the admin CLI.

[ssh]
# Address the SSH gateway listens on (`vestibule serve --ssh-listen` overrides it).
listen = "0.0.0.0:2222"
# The host key people's SSH clients see when they connect.
host_key = "keys/ssh_host_ed25519_key"
# The key the gateway logs in to targets with. Its public half, printed by
# `vestibule gateway-key`, goes into each target's authorized_keys.
client_key = "keys/gateway_ed25519_key"
# Seconds to wait for a target to accept the connection and finish the SSH handshake.
target_connect_timeout_secs = 10
# Extra names and addresses the gateway's host certificate is valid for, besides
# this machine's hostname, localhost, 127.0.0.1 and ::1 (e.g. "bastion.example.com").
host_names = []
# A file of CA public keys (or known_hosts `@cert-authority` lines) trusted to
# certify the host keys of targets added with `--global-host-ca`. Read at each
# connection, so edits apply at once. Unset: such targets are refused.
# target_host_cas = "target_host_cas.pub"
# Ciphers offered to people's SSH clients; the client picks the first of its own
# list that is offered. Unset: AES-GCM only on a CPU with AES instructions
# (OpenSSH's first choice, ChaCha20-Poly1305, costs the gateway about three times
# as much per byte there), else ChaCha20-Poly1305 and AES-GCM. Clients without
# AES-GCM (e.g. paramiko before 3.5) need e.g.
# ciphers = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes256-ctr", "aes128-ctr"]
# Threads that carry sessions. Each connection lives on one of them, so its
# packets never cross cores between its tasks; new connections go to the thread
# holding the fewest. 0: one per core.
session_threads = 0

[ca]
# Lifetime, in seconds, of the certificate the gateway makes for each session to
# log in to a target. It only has to cover the handshake.
target_cert_ttl_secs = 120
# The gateway's egress addresses (CIDRs). When set, session certificates carry
# them as the source-address critical option, so a stolen certificate is useless
# from anywhere else.
source_addresses = []
# Lifetime, in seconds, of the certificate `vestibule login` gives a person when
# they ask for none, and the longest they may ask for.
default_login_ttl_secs = 28800
max_login_ttl_secs = 86400

[http]
# Address of the HTTPS API (`vestibule login`); `vestibule serve --http-listen` overrides it.
listen = "0.0.0.0:8443"
# TLS certificate and key. `init` makes a self-signed pair; its fingerprint is
# printed at start for clients to pin. Replace them with a certificate from your CA.
tls_cert = "tls/cert.pem"
tls_key = "tls/key.pem"

[metrics]
# /metrics is on the HTTPS listener. Set a file holding a secret token (mode 0600,
# read at start) to require `Authorization: Bearer TOKEN` for /metrics; /readyz
# and /healthz stay open. Unset: /metrics needs no token.
# bearer_token_file = "metrics_token"

[identity]
# Brute-force protection, shared by SSH and the HTTPS login: failures are counted
# per source address and per user; each failed answer is delayed by
# backoff_base_ms doubled per failure, and max_failures failures lock the address
# or user out for lockout_secs (failures older than that are forgotten).
max_failures = 5
lockout_secs = 300
backoff_base_ms = 250
# Require a TOTP second factor of everyone (`vestibule user mfa enroll NAME`).
# People enrolled are always asked.
require_mfa = false
# With require_mfa, people not enrolled enrol at their first login (after their
# first factor they are shown a QR code and give a code from it); false refuses
# them until an administrator enrols them.
enroll_at_first_login = true

[access_requests]
# Just-in-time access (`vestibule request ...`, or filed at the SSH prompt by a
# person whom policy lets request a target). Policies under policies/ decide who
# may request (action request.create) and approve (request.approve).
# How long a grant filed at the SSH prompt lasts, in seconds.
duration_secs = 3600
# Approvals, by people other than the requester, that a request needs.
approvals_required = 1
# How long a person's SSH session waits for approval, in seconds.
wait_timeout_secs = 300
# Seconds that sessions may outlive the grant they rest on before they are ended.
grace_secs = 60

[audit]
# The tamper-evident audit trail lives in audit/ (hash-chained JSON lines, signed
# with keys/audit_ed25519_key). `vestibule audit verify` checks it.
# Sign a checkpoint every this many events, or this long after the first unsigned one.
checkpoint_every = 1000
checkpoint_interval = "60s"
# Events nobody waits for (all but a session's start) may wait this long for
# others to share their sync; "0s" syncs each at once.
record_linger = "50ms"
# SIEM export: any number of sinks, each catching up from its own cursor after an
# outage. Examples (see docs/audit-events.md):
# [[audit.sinks]]
# name = "siem"
# kind = "syslog"
# transport = "tcp"        # udp, tcp or tls
# address = "127.0.0.1:6514"
# [[audit.sinks]]
# name = "splunk"
# kind = "webhook"
# url = "https://splunk.example:8088/services/collector/event"
# format = "splunk_hec"
# authorization_file = "/etc/vestibule/hec-token"

[recording]
# Every session is recorded (terminals as asciicast v2, exec output, scp/rsync
# byte counts, SFTP file operations, forwards). A session whose recording cannot
# be stored is refused ("recording storage unavailable") unless a policy permits
# recording.optional for it. `vestibule recordings`, `vestibule play`.
enabled = true             # false only for benchmarks and labs
storage = "local"          # or "s3" with a [recording.s3] table (docs/recording.md)
dir = "recordings"         # local storage, and the spool for S3
flush_interval_ms = 1000   # what the gateway forwarded is on disk within this
buffer_limit_bytes = 8388608
min_free_bytes = 268435456 # refuse new sessions below this much free disk
hash = "blake3"            # integrity hash of new recordings; "sha256" where FIPS is required
# retention_days = 90      # delete older recordings (legal holds are kept)

# [sso]
# OpenID Connect single sign-on (docs/sso.md): web login at /auth/login,
# `vestibule login --sso`, and SSH logins approved in a browser.
# issuer = "https://idp.example.com/realms/main"
# client_id = "vestibule"
# client_secret_file = "sso_client_secret"   # 0600; or client_secret = "..."
# scopes = ["openid", "profile", "email", "groups"]
# username_claim = "preferred_username"      # the Vestibule user name
# groups_claim = "groups"
# auto_provision = false                     # true: create unknown users at first login
# base_url = "https://bastion.example.com:8443"   # the IdP must allow BASE_URL/auth/callback
# http_timeout_secs = 5                      # an unreachable IdP fails this fast
# approval_timeout_secs = 300                # how long an SSH or CLI login waits for the browser
# [sso.groups_to_roles]
# ops = ["ops"]                              # IdP group -> Vestibule roles

[database]
# The embedded SQLite database file.
sqlite = "vestibule.db"

[log]
# Log filter in tracing's syntax, e.g. "info" or "vestibule=debug,russh=info".
# The RUST_LOG environment variable overrides it.
filter = "info"
"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub ssh: SshConfig,
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "validated now, served by the HTTP API of a later issue"
    )]
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    #[serde(default)]
    pub ca: CaConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub access_requests: AccessRequestsConfig,
    #[serde(default)]
    pub identity: IdentityConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub audit: vestibule_audit::AuditConfig,
    #[serde(default)]
    pub recording: vestibule_recording::RecordingConfig,
    /// OpenID Connect single sign-on; absent: off.
    #[serde(default)]
    pub sso: Option<crate::sso::SsoConfig>,
}

/// `[metrics]`: who may read `/metrics`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// A file (relative to the data dir, mode 0600) holding the bearer token
    /// `/metrics` requires; unset: no token.
    pub bearer_token_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    pub max_failures: u32,
    pub lockout_secs: u64,
    pub backoff_base_ms: u64,
    pub require_mfa: bool,
    pub enroll_at_first_login: bool,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            max_failures: 5,
            lockout_secs: 300,
            backoff_base_ms: 250,
            require_mfa: false,
            enroll_at_first_login: true,
        }
    }
}

impl IdentityConfig {
    pub fn settings(&self) -> vestibule_gateway::IdentitySettings {
        use vestibule_identity::limiter::{Limiter, LimiterSettings};
        vestibule_gateway::IdentitySettings {
            limiter: Arc::new(Limiter::new(LimiterSettings {
                max_failures: self.max_failures.max(1),
                lockout: Duration::from_secs(self.lockout_secs),
                backoff_base: Duration::from_millis(self.backoff_base_ms),
                ..LimiterSettings::default()
            })),
            require_mfa: self.require_mfa,
            enroll_at_first_login: self.enroll_at_first_login,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessRequestsConfig {
    pub duration_secs: u64,
    pub approvals_required: u32,
    pub wait_timeout_secs: u64,
    pub grace_secs: u64,
}

impl Default for AccessRequestsConfig {
    fn default() -> Self {
        Self {
            duration_secs: 3600,
            approvals_required: 1,
            wait_timeout_secs: 300,
            grace_secs: 60,
        }
    }
}

impl AccessRequestsConfig {
    pub fn settings(&self) -> vestibule_gateway::AccessRequestSettings {
        vestibule_gateway::AccessRequestSettings {
            duration: Duration::from_secs(self.duration_secs.max(60)),
            approvals_required: i64::from(self.approvals_required.max(1)),
            wait_timeout: Duration::from_secs(self.wait_timeout_secs),
            grace: Duration::from_secs(self.grace_secs),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaConfig {
    #[serde(default = "default_target_cert_ttl")]
    pub target_cert_ttl_secs: u64,
    #[serde(default)]
    pub source_addresses: Vec<String>,
    #[serde(default = "default_login_ttl")]
    pub default_login_ttl_secs: u64,
    #[serde(default = "max_login_ttl")]
    pub max_login_ttl_secs: u64,
}

impl Default for CaConfig {
    fn default() -> Self {
        Self {
            target_cert_ttl_secs: default_target_cert_ttl(),
            source_addresses: Vec::new(),
            default_login_ttl_secs: default_login_ttl(),
            max_login_ttl_secs: max_login_ttl(),
        }
    }
}

fn default_login_ttl() -> u64 {
    8 * 3600
}

fn max_login_ttl() -> u64 {
    24 * 3600
}

fn default_target_cert_ttl() -> u64 {
    120
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshConfig {
    pub listen: SocketAddr,
    pub host_key: String,
    pub client_key: String,
    #[serde(default = "default_connect_timeout")]
    pub target_connect_timeout_secs: u64,
    #[serde(default)]
    pub host_names: Vec<String>,
    #[serde(default)]
    pub target_host_cas: Option<String>,
    #[serde(default)]
    pub ciphers: Option<Vec<String>>,
    /// Threads carrying sessions; 0 (the default) is one per core.
    #[serde(default)]
    pub session_threads: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    #[serde(default = "default_tls_cert")]
    pub tls_cert: String,
    #[serde(default = "default_tls_key")]
    pub tls_key: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            tls_cert: default_tls_cert(),
            tls_key: default_tls_key(),
        }
    }
}

fn default_tls_cert() -> String {
    "tls/cert.pem".into()
}

fn default_tls_key() -> String {
    "tls/key.pem".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub sqlite: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            filter: "info".into(),
        }
    }
}

fn default_connect_timeout() -> u64 {
    10
}

impl Config {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read configuration {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid configuration {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        let config: Self = toml::from_str(text)?;
        if !(1..=300).contains(&config.ssh.target_connect_timeout_secs) {
            anyhow::bail!("ssh.target_connect_timeout_secs must be between 1 and 300");
        }
        if config.ssh.session_threads > 1024 {
            anyhow::bail!("ssh.session_threads must be at most 1024 (0: one per core)");
        }
        if config.ca.max_login_ttl_secs == 0
            || !(1..=config.ca.max_login_ttl_secs).contains(&config.ca.default_login_ttl_secs)
        {
            anyhow::bail!("ca.default_login_ttl_secs must be between 1 and ca.max_login_ttl_secs");
        }
        if !(30..=3600).contains(&config.ca.target_cert_ttl_secs) {
            anyhow::bail!("ca.target_cert_ttl_secs must be between 30 and 3600");
        }
        if let Some(sso) = &config.sso {
            sso.validate()?;
        }
        config.front_ciphers().context("ssh.ciphers")?;
        for cidr in &config.ca.source_addresses {
            let (address, prefix) = cidr.split_once('/').unwrap_or((cidr, "0"));
            if address.parse::<std::net::IpAddr>().is_err() || prefix.parse::<u8>().is_err() {
                anyhow::bail!("ca.source_addresses: {cidr:?} is not an address or CIDR block");
            }
        }
        Ok(config)
    }

    pub fn target_connect_timeout(&self) -> Duration {
        Duration::from_secs(self.ssh.target_connect_timeout_secs)
    }

    /// The ciphers offered to people's clients.
    pub fn front_ciphers(
        &self,
    ) -> Result<
        vestibule_gateway::algorithms::FrontCiphers,
        vestibule_gateway::algorithms::CipherListError,
    > {
        match &self.ssh.ciphers {
            None => Ok(vestibule_gateway::algorithms::FrontCiphers::for_this_cpu()),
            Some(names) => vestibule_gateway::algorithms::FrontCiphers::from_names(names),
        }
    }

    /// What the gateway's certificates say.
    pub fn certificate_settings(&self) -> vestibule_gateway::CertificateSettings {
        let mut host_names = Vec::new();
        if let Ok(hostname) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            host_names.push(hostname.trim().to_owned());
        }
        host_names.extend(["localhost", "127.0.0.1", "::1"].map(String::from));
        host_names.extend(self.ssh.host_names.iter().cloned());
        host_names.retain(|n| !n.is_empty());
        host_names.dedup();
        let source_address =
            (!self.ca.source_addresses.is_empty()).then(|| self.ca.source_addresses.join(","));
        vestibule_gateway::CertificateSettings {
            target_cert_ttl: Duration::from_secs(self.ca.target_cert_ttl_secs),
            source_address,
            host_names,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vestibule_recording::HashAlgorithm;

    #[test]
    fn ssh_ciphers_are_checked_when_the_configuration_is_read() {
        let example = TEMPLATE.replace("# ciphers = [", "ciphers = [");
        let chosen = Config::parse(&example).unwrap().front_ciphers().unwrap();
        assert_eq!(chosen.names().count(), 5);
        let weak = TEMPLATE.replace(
            "[ssh]\n",
            "[ssh]\nciphers = [\"aes128-gcm@openssh.com\", \"aes128-cbc\"]\n",
        );
        let error = format!("{:#}", Config::parse(&weak).unwrap_err());
        assert!(
            error.contains("ssh.ciphers") && error.contains("\"aes128-cbc\" cannot be offered"),
            "{error}"
        );
        let none = TEMPLATE.replace("[ssh]\n", "[ssh]\nciphers = []\n");
        assert!(Config::parse(&none).is_err());
    }

    #[test]
    fn session_threads_default_to_one_per_core_and_are_bounded() {
        assert_eq!(Config::parse(TEMPLATE).unwrap().ssh.session_threads, 0);
        let four = TEMPLATE.replace("session_threads = 0", "session_threads = 4");
        assert_eq!(Config::parse(&four).unwrap().ssh.session_threads, 4);
        let many = TEMPLATE.replace("session_threads = 0", "session_threads = 5000");
        let error = format!("{:#}", Config::parse(&many).unwrap_err());
        assert!(
            error.contains("ssh.session_threads must be at most 1024"),
            "{error}"
        );
        let negative = TEMPLATE.replace("session_threads = 0", "session_threads = -1");
        assert!(Config::parse(&negative).is_err());
    }

    #[test]
    fn the_recording_hash_is_a_named_choice() {
        let config = Config::parse(TEMPLATE).unwrap();
        assert_eq!(config.recording.hash, HashAlgorithm::Blake3);
        let fips = TEMPLATE.replace("hash = \"blake3\"", "hash = \"sha256\"");
        assert_eq!(
            Config::parse(&fips).unwrap().recording.hash,
            HashAlgorithm::Sha256
        );
        let md5 = TEMPLATE.replace("hash = \"blake3\"", "hash = \"md5\"");
        let error = format!("{:#}", Config::parse(&md5).unwrap_err());
        assert!(
            error.contains("unknown variant `md5`")
                && error.contains("expected `blake3` or `sha256`"),
            "{error}"
        );
    }

    #[test]
    fn template_is_valid() {
        let config = Config::parse(TEMPLATE).unwrap();
        assert_eq!(config.ssh.listen.port(), 2222);
        assert_eq!(config.http.listen.port(), 8443);
        assert_eq!(config.target_connect_timeout(), Duration::from_secs(10));
        let certs = config.certificate_settings();
        assert_eq!(certs.target_cert_ttl, Duration::from_secs(120));
        assert!(certs.host_names.contains(&"127.0.0.1".to_owned()));
        assert!(certs.source_address.is_none());
        let fenced = TEMPLATE.replace(
            "source_addresses = []",
            "source_addresses = [\"10.0.0.0/8\", \"192.0.2.1\"]",
        );
        let fenced = Config::parse(&fenced).unwrap().certificate_settings();
        assert_eq!(
            fenced.source_address.as_deref(),
            Some("10.0.0.0/8,192.0.2.1")
        );
        let bad = TEMPLATE.replace("source_addresses = []", "source_addresses = [\"nowhere\"]");
        assert!(Config::parse(&bad).is_err());
        assert!(config.metrics.bearer_token_file.is_none());
        let guarded = TEMPLATE.replace(
            "# bearer_token_file = \"metrics_token\"",
            "bearer_token_file = \"metrics_token\"",
        );
        let guarded = Config::parse(&guarded).unwrap();
        assert_eq!(
            guarded.metrics.bearer_token_file.as_deref(),
            Some("metrics_token")
        );
    }

    #[test]
    fn errors_name_the_line() {
        let bad = TEMPLATE.replace("listen = \"0.0.0.0:2222\"", "listen = \"nowhere\"");
        let message = format!("{:#}", Config::parse(&bad).unwrap_err());
        assert!(message.contains("line"), "{message}");
        let typo = TEMPLATE.replace("[log]", "[log]\nfliter = \"x\"");
        assert!(format!("{:#}", Config::parse(&typo).unwrap_err()).contains("fliter"));
    }
}
