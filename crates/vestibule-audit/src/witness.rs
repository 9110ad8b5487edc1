//! The head witness, `head.json`: a signed note of the last durable event
//! (seq and hash) and the last checkpoint, replaced atomically after every
//! group commit. It only ever lags the log, never leads it, so a log that ends
//! before the witness's seq has lost its tail.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::chain::canonical;
use crate::key::{AuditKey, AuditPublicKey};

pub(crate) const HEAD_FILE: &str = "head.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Head {
    pub seq: u64,
    pub hash: String,
    pub last_checkpoint: u64,
    pub time: String,
    pub key: String,
    pub sig: String,
}

impl Head {
    pub fn sign(seq: u64, hash: &str, last_checkpoint: u64, key: &AuditKey) -> Self {
        let time = Timestamp::now().to_string();
        let message = message(seq, hash, last_checkpoint, &time);
        Self {
            seq,
            hash: hash.to_owned(),
            last_checkpoint,
            sig: key.sign(&message),
            key: key.public_key().to_string(),
            time,
        }
    }

    pub fn verify(&self, key: &AuditPublicKey) -> bool {
        key.verify(
            &message(self.seq, &self.hash, self.last_checkpoint, &self.time),
            &self.sig,
        )
    }

    pub fn path(dir: &Path) -> PathBuf {
        dir.join(HEAD_FILE)
    }

    /// `Ok(None)` when there is no witness; `Err` with a reason when there is
    /// one that cannot be read.
    pub fn read(dir: &Path) -> Result<Option<Head>, String> {
        let path = Self::path(dir);
        match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| format!("cannot parse: {e}")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read: {e}")),
        }
    }

    /// Replace the witness: write a temporary file, sync it, rename it over.
    /// The directory is not synced: losing the rename in a crash leaves the
    /// previous witness, which is still a valid lower bound.
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        let tmp = dir.join(format!("{HEAD_FILE}.tmp"));
        let body = serde_json::to_value(self).map_err(io::Error::other)?;
        let mut file = File::create(&tmp)?;
        file.write_all(format!("{}\n", canonical(&body)).as_bytes())?;
        file.sync_data()?;
        fs::rename(&tmp, Self::path(dir))
    }
}

fn message(seq: u64, hash: &str, last_checkpoint: u64, time: &str) -> Vec<u8> {
    format!("vestibule-audit-head/1\n{seq}\n{hash}\n{last_checkpoint}\n{time}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_reads_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Head::read(dir.path()).unwrap(), None);
        let key = AuditKey::generate();
        let head = Head::sign(5, "abc", 4, &key);
        head.write(dir.path()).unwrap();
        let read = Head::read(dir.path()).unwrap().unwrap();
        assert_eq!(read, head);
        assert!(read.verify(&key.public_key()));
        let mut forged = read;
        forged.seq = 3;
        assert!(!forged.verify(&key.public_key()));
        fs::write(Head::path(dir.path()), "{").unwrap();
        assert!(Head::read(dir.path()).is_err());
    }
}
