//! CA keys on disk. Each CA is a directory of Ed25519 keys named by creation
//! time; every key there is trusted, and the newest one signs. Rotation adds a
//! key; finishing it retires all but the newest (their public halves are kept
//! under `retired/` for the record; the private halves are deleted).

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use russh::keys::ssh_key::{self, HashAlg, LineEnding, PrivateKey, PublicKey};

use crate::CaError;

/// Which authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaKind {
    User,
    Host,
}

impl CaKind {
    fn dir_name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Host => "host",
        }
    }
}

impl fmt::Display for CaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dir_name())
    }
}

/// The keys of one CA as loaded: all trusted, the newest signs.
pub struct Keyring {
    kind: CaKind,
    /// Oldest first; never empty.
    keys: Vec<PrivateKey>,
}

impl Keyring {
    pub fn kind(&self) -> CaKind {
        self.kind
    }

    pub(crate) fn signing_key(&self) -> Result<&PrivateKey, CaError> {
        self.keys.last().ok_or(CaError::NoKey(self.kind))
    }

    /// The public keys to trust, oldest first.
    pub fn trusted(&self) -> Vec<PublicKey> {
        self.keys.iter().map(|k| k.public_key().clone()).collect()
    }

    pub(crate) fn trusted_fingerprints(&self) -> Vec<ssh_key::Fingerprint> {
        self.keys
            .iter()
            .map(|k| k.public_key().fingerprint(HashAlg::Sha256))
            .collect()
    }

    /// The CA's trusted keys as OpenSSH lines (for TrustedUserCAKeys and the like).
    pub fn export(&self) -> Result<Vec<String>, CaError> {
        self.keys
            .iter()
            .map(|k| {
                k.public_key()
                    .to_openssh()
                    .map_err(|source| CaError::Crypto {
                        what: "encode a CA public key",
                        source,
                    })
            })
            .collect()
    }
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CaError {
    let path = path.display().to_string();
    move |source| CaError::Io { what, path, source }
}

/// The directory of one CA, e.g. `DATA_DIR/ca/user`.
#[derive(Debug, Clone)]
pub struct CaDirectory {
    kind: CaKind,
    dir: PathBuf,
}

impl CaDirectory {
    pub fn new(ca_root: &Path, kind: CaKind) -> Self {
        Self {
            kind,
            dir: ca_root.join(kind.dir_name()),
        }
    }

    /// The private key files, oldest first.
    fn key_files(&self) -> Result<Vec<PathBuf>, CaError> {
        let mut files: Vec<PathBuf> = fs::read_dir(&self.dir)
            .map_err(io("cannot read CA directory", &self.dir))?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|e| e == "key"))
            .collect();
        files.sort();
        Ok(files)
    }

    pub fn load(&self) -> Result<Keyring, CaError> {
        let keys = self
            .key_files()?
            .iter()
            .map(|path| load_private_key(path))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(CaError::NoKey(self.kind));
        }
        Ok(Keyring {
            kind: self.kind,
            keys,
        })
    }

    /// Create the directory with a first key. Used by `init`.
    pub fn create(&self) -> Result<PublicKey, CaError> {
        fs::create_dir_all(&self.dir).map_err(io("cannot create CA directory", &self.dir))?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
            .map_err(io("cannot set permissions of", &self.dir))?;
        self.add_key()
    }

    /// Start a rotation: add a new key, trusted beside the old and signing from now.
    pub fn rotate(&self) -> Result<PublicKey, CaError> {
        let count = self.key_files()?.len();
        if count != 1 {
            return Err(CaError::Rotation {
                kind: self.kind,
                count,
                hint: "a rotation is already in progress; finish it with `vestibule ca rotate --finish` first",
            });
        }
        self.add_key()
    }

    /// Finish a rotation: stop trusting every key but the newest. Returns the
    /// retired public keys.
    pub fn finish_rotation(&self) -> Result<Vec<PublicKey>, CaError> {
        let files = self.key_files()?;
        let Some((_newest, older)) = files.split_last() else {
            return Err(CaError::NoKey(self.kind));
        };
        if older.is_empty() {
            return Err(CaError::Rotation {
                kind: self.kind,
                count: 1,
                hint: "no rotation is in progress",
            });
        }
        let retired_dir = self.dir.join("retired");
        fs::create_dir_all(&retired_dir).map_err(io("cannot create", &retired_dir))?;
        let mut retired = Vec::new();
        for file in older {
            let key = load_private_key(file)?;
            let public = file.with_extension("pub");
            if let Some(name) = public.file_name() {
                let _ = fs::rename(&public, retired_dir.join(name));
            }
            fs::remove_file(file).map_err(io("cannot remove retired CA key", file))?;
            retired.push(key.public_key().clone());
        }
        Ok(retired)
    }

    fn add_key(&self) -> Result<PublicKey, CaError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let stem = format!("{nanos:020}");
        let mut key = PrivateKey::random(&mut rand::rng(), ssh_key::Algorithm::Ed25519).map_err(
            |source| CaError::Crypto {
                what: "generate a CA key",
                source,
            },
        )?;
        key.set_comment(format!("vestibule-{}-ca", self.kind));
        let pem = key
            .to_openssh(LineEnding::LF)
            .map_err(|source| CaError::Crypto {
                what: "encode a CA key",
                source,
            })?;
        let public = key
            .public_key()
            .to_openssh()
            .map_err(|source| CaError::Crypto {
                what: "encode a CA public key",
                source,
            })?;
        write_new(
            &self.dir.join(format!("{stem}.pub")),
            format!("{public}\n").as_bytes(),
            0o644,
        )?;
        write_new(&self.dir.join(format!("{stem}.key")), pem.as_bytes(), 0o600)?;
        Ok(key.public_key().clone())
    }
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CaError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io("cannot create", path))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io("cannot write", path))
}

fn load_private_key(path: &Path) -> Result<PrivateKey, CaError> {
    let mode = fs::metadata(path)
        .map_err(io("cannot read CA key", path))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(CaError::Permissions {
            path: path.display().to_string(),
            mode: mode & 0o777,
        });
    }
    let pem = zeroize::Zeroizing::new(fs::read(path).map_err(io("cannot read CA key", path))?);
    PrivateKey::from_openssh(&*pem).map_err(|source| CaError::Parse {
        path: path.display().to_string(),
        source,
    })
}

/// A CA as the running gateway sees it: reloaded when the admin CLI rotates it,
/// so rotation needs no restart. Checked at session setup (one directory listing),
/// never per packet.
pub struct LiveKeyring {
    directory: CaDirectory,
    cached: RwLock<(Vec<PathBuf>, Arc<Keyring>)>,
}

impl LiveKeyring {
    pub fn open(ca_root: &Path, kind: CaKind) -> Result<Self, CaError> {
        let directory = CaDirectory::new(ca_root, kind);
        let files = directory.key_files()?;
        let keyring = Arc::new(directory.load()?);
        Ok(Self {
            directory,
            cached: RwLock::new((files, keyring)),
        })
    }

    /// The current keys, reloading them if the directory changed.
    pub fn current(&self) -> Result<Arc<Keyring>, CaError> {
        let files = self.directory.key_files()?;
        if let Ok(cached) = self.cached.read()
            && cached.0 == files
        {
            return Ok(cached.1.clone());
        }
        let keyring = Arc::new(self.directory.load()?);
        if let Ok(mut cached) = self.cached.write() {
            *cached = (files, keyring.clone());
        }
        Ok(keyring)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_adds_then_retires() {
        let root = tempfile::tempdir().unwrap();
        let dir = CaDirectory::new(root.path(), CaKind::User);
        let first = dir.create().unwrap();
        let live = LiveKeyring::open(root.path(), CaKind::User).unwrap();
        assert_eq!(live.current().unwrap().trusted(), vec![first.clone()]);
        assert!(dir.finish_rotation().is_err(), "nothing to finish");
        let second = dir.rotate().unwrap();
        assert!(dir.rotate().is_err(), "one rotation at a time");
        let ring = live.current().unwrap();
        assert_eq!(ring.trusted(), vec![first.clone(), second.clone()]);
        assert_eq!(ring.signing_key().unwrap().public_key(), &second);
        assert_eq!(dir.finish_rotation().unwrap(), vec![first]);
        assert_eq!(live.current().unwrap().trusted(), vec![second]);
        assert!(
            root.path()
                .join("user/retired")
                .read_dir()
                .unwrap()
                .next()
                .is_some()
        );
    }

    #[test]
    fn refuses_readable_keys() {
        let root = tempfile::tempdir().unwrap();
        let dir = CaDirectory::new(root.path(), CaKind::Host);
        dir.create().unwrap();
        let key = dir.key_files().unwrap().remove(0);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(dir.load(), Err(CaError::Permissions { .. })));
    }
}
