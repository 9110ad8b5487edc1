//! The data dir: configuration, keys and database in one directory.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use russh::keys::PrivateKey;
use russh::keys::ssh_key::LineEnding;
use vestibule_ca::{CaDirectory, CaKind};
use vestibule_store::{SecretKey, Store};

use crate::config::{Config, TEMPLATE};

/// The default data dir: `/var/lib/vestibule` for root, otherwise
/// `$XDG_DATA_HOME/vestibule` or `~/.local/share/vestibule`.
pub fn default_dir() -> PathBuf {
    // /proc/self belongs to the effective user: root without unsafe libc calls.
    let is_root = fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    if is_root.unwrap_or(false) {
        return PathBuf::from("/var/lib/vestibule");
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("vestibule");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/vestibule")
}

#[derive(Clone)]
pub struct DataDir {
    pub root: PathBuf,
}

impl DataDir {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("vestibule.toml")
    }

    pub fn is_initialised(&self) -> bool {
        self.config_path().exists()
    }

    pub fn resolve(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    pub fn load_config(&self) -> Result<Config> {
        if !self.is_initialised() {
            bail!(
                "{} is not a Vestibule data dir (no vestibule.toml); run `vestibule init --data-dir {}` first",
                self.root.display(),
                self.root.display()
            );
        }
        Config::load(&self.config_path())
    }

    /// The database, with the key that seals TOTP secrets (made on first use).
    pub async fn open_store(&self, config: &Config) -> Result<Store> {
        let path = self.resolve(&config.database.sqlite);
        let store = Store::open_sqlite(&path, false)
            .await
            .with_context(|| format!("cannot open the database {}", path.display()))?;
        let key = self.load_or_create_secret_key()?;
        store
            .with_secret_key(key)
            .await
            .context("cannot seal the TOTP secrets stored in the clear")
    }

    /// The key that seals TOTP secrets in the database, `DIR/keys/mfa_secret_key`.
    pub fn secret_key_path(&self) -> PathBuf {
        self.root.join("keys").join("mfa_secret_key")
    }

    /// Read the secret key, or make it (0600) in a data dir made before it
    /// existed. Refused if others can read it, as every key file.
    pub fn load_or_create_secret_key(&self) -> Result<SecretKey> {
        let path = self.secret_key_path();
        if !path.exists() {
            create_private_dir(&self.root.join("keys"))?;
            match write_new_file(&path, SecretKey::generate_text().as_bytes(), 0o600) {
                Ok(()) => {}
                // Another process (the CLI beside `serve`) made it first.
                Err(_) if path.exists() => {}
                Err(error) => return Err(error),
            }
        }
        require_private(&path)?;
        let text = zeroize::Zeroizing::new(
            fs::read_to_string(&path)
                .with_context(|| format!("cannot read key {}", path.display()))?,
        );
        SecretKey::from_text(&text).with_context(|| format!("key {}", path.display()))
    }

    /// The CA keys' root, `DIR/ca`.
    pub fn ca_root(&self) -> PathBuf {
        self.root.join("ca")
    }

    /// Make the CA directories that are missing (data dirs made before the CA
    /// existed get theirs at the next start).
    pub fn ensure_cas(&self) -> Result<()> {
        for kind in [CaKind::User, CaKind::Host] {
            if !self.ca_root().join(kind.to_string()).exists() {
                create_private_dir(&self.ca_root())?;
                CaDirectory::new(&self.ca_root(), kind).create()?;
            }
        }
        Ok(())
    }

    /// Make a self-signed TLS certificate for the HTTPS API if there is none.
    pub fn ensure_tls(&self, config: &Config) -> Result<()> {
        let cert = self.resolve(&config.http.tls_cert);
        let key = self.resolve(&config.http.tls_key);
        if cert.exists() || key.exists() {
            return Ok(());
        }
        for parent in [cert.parent(), key.parent()].into_iter().flatten() {
            create_private_dir(parent)?;
        }
        let names = config.certificate_settings().host_names;
        let (cert_pem, key_pem) = crate::tls::self_signed(names)?;
        write_new_file(&key, key_pem.as_bytes(), 0o600)?;
        write_new_file(&cert, cert_pem.as_bytes(), 0o644)
    }

    pub fn tls_paths(&self, config: &Config) -> (PathBuf, PathBuf) {
        (
            self.resolve(&config.http.tls_cert),
            self.resolve(&config.http.tls_key),
        )
    }

    pub fn load_key(&self, relative: &str) -> Result<PrivateKey> {
        let path = self.resolve(relative);
        require_private(&path)?;
        let pem = zeroize::Zeroizing::new(
            fs::read_to_string(&path)
                .with_context(|| format!("cannot read key {}", path.display()))?,
        );
        PrivateKey::from_openssh(pem.as_bytes())
            .with_context(|| format!("cannot parse key {}", path.display()))
    }

    /// Where operators' Cedar policies live.
    pub fn policies_dir(&self) -> PathBuf {
        self.root.join("policies")
    }

    /// Make the policy directory with the default policies, if it is missing.
    pub fn ensure_policies(&self) -> Result<()> {
        let dir = self.policies_dir();
        if dir.exists() {
            return Ok(());
        }
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        write_new_file(
            &dir.join("access-requests.cedar"),
            DEFAULT_POLICIES.as_bytes(),
            0o644,
        )
    }

    /// Create a fresh data dir. Refuses if one already exists there.
    pub async fn init(&self) -> Result<()> {
        if self.is_initialised() {
            bail!(
                "{} is already a Vestibule data dir; refusing to overwrite it",
                self.root.display()
            );
        }
        if self.root.exists() && fs::read_dir(&self.root)?.next().is_some() {
            bail!(
                "{} exists and is not empty; refusing to initialise a data dir there",
                self.root.display()
            );
        }
        create_private_dir(&self.root)?;
        create_private_dir(&self.root.join("keys"))?;
        self.load_or_create_secret_key()?;
        let config = Config::parse(TEMPLATE)?;
        for (relative, comment) in [
            (&config.ssh.host_key, "vestibule-host"),
            (&config.ssh.client_key, "vestibule-gateway"),
        ] {
            write_new_key(&self.resolve(relative), comment)?;
        }
        self.ensure_cas()?;
        self.ensure_tls(&config)?;
        self.ensure_policies()?;
        let db = self.resolve(&config.database.sqlite);
        Store::open_sqlite(&db, true)
            .await
            .with_context(|| format!("cannot create the database {}", db.display()))?
            .close()
            .await;
        // Written last: its presence marks a complete data dir.
        write_new_file(&self.config_path(), TEMPLATE.as_bytes(), 0o600)?;
        Ok(())
    }
}

/// The policies a new data dir starts with: approved just-in-time requests
/// allow what they name, and holders of the role `approvers` may approve.
const DEFAULT_POLICIES: &str = r#"// Default policies, written by `vestibule init`. Edit freely: the gateway
// reloads this directory when a file changes (or on SIGHUP) and keeps the
// policies in force if a change does not validate (`vestibule policy check`).
// The schema: `vestibule policy schema`. Roles (`vestibule role`) add their own
// policies: `vestibule policy roles`.

// A session that an approved just-in-time request covers
// (`vestibule request approve`) is allowed until the grant expires.
@id("jit-grant")
permit (principal, action in Vestibule::Action::"ssh.session", resource)
when { context has grant };

// Holders of the role "approvers" may approve others' requests
// (nobody may approve their own).
@id("approvers")
permit (
  principal in Vestibule::Role::"approvers",
  action == Vestibule::Action::"request.approve",
  resource
);

// Example: anyone may request access to staging targets.
// @id("request-staging")
// permit (principal, action == Vestibule::Action::"request.create", resource)
// when { resource.hasTag("env") && resource.getTag("env") == "staging" };

// Example: production needs a ticket (ssh -o SetEnv=VESTIBULE_TICKET=INC-1234 ...).
// @id("prod-needs-ticket")
// @reason("production needs a ticket: ssh -o SetEnv=VESTIBULE_TICKET=INC-1234 ...")
// forbid (principal, action in Vestibule::Action::"ssh.session", resource)
// when { resource.hasTag("env") && resource.getTag("env") == "prod" }
// unless { context has ticket };
"#;

/// Refuse a private key file that group or others can read.
pub fn require_private(path: &Path) -> Result<()> {
    let mode = fs::metadata(path)
        .with_context(|| format!("cannot read key {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "key {} is readable by others (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    Ok(())
}

fn create_private_dir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot set permissions of {}", path.display()))
}

/// Create `path` (it must not exist) with `mode`, write `bytes` and sync.
pub fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn write_new_key(path: &Path, comment: &str) -> Result<()> {
    let mut key = vestibule_identity::generate_ed25519()?;
    key.set_comment(comment);
    let pem = key
        .to_openssh(LineEnding::LF)
        .context("cannot encode key")?;
    write_new_file(path, pem.as_bytes(), 0o600)?;
    let public = key
        .public_key()
        .to_openssh()
        .context("cannot encode public key")?;
    write_new_file(
        &path.with_extension("pub"),
        format!("{public}\n").as_bytes(),
        0o644,
    )
}
