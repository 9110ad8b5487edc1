//! The head witness, `head.json`: a signed note of the last durable event
//! (seq and hash) and the last checkpoint, rewritten after every group commit.
//! It only ever lags the log, never leads it, so a log that ends before the
//! witness's seq has lost its tail.
//!
//! The file holds two fixed-size slots, one signed head per line, padded with
//! spaces. Each commit overwrites the older slot in place and syncs it, so a
//! crash tears at most the slot being written and the other still stands; the
//! reader takes the highest seq among the slots that parse. Overwriting in
//! place, rather than writing a new file and renaming it, saves an inode
//! allocation and a directory change per commit: the largest share of the
//! gateway's CPU per connection before this layout.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::chain::canonical;
use crate::key::{AuditKey, AuditPublicKey};

pub(crate) const HEAD_FILE: &str = "head.json";

/// Bytes per slot, newline included. A signed head is about 330 bytes.
const SLOT: usize = 512;

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
    /// one and none of its slots can be read.
    pub fn read(dir: &Path) -> Result<Option<Head>, String> {
        let path = Self::path(dir);
        match fs::read_to_string(&path) {
            Ok(text) => newest_slot(&text).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read: {e}")),
        }
    }

    fn slot(&self) -> io::Result<Vec<u8>> {
        let body = serde_json::to_value(self).map_err(io::Error::other)?;
        let mut line = canonical(&body).into_bytes();
        if line.len() >= SLOT {
            return Err(io::Error::other(format!(
                "a signed head of {} bytes does not fit a {SLOT}-byte slot",
                line.len()
            )));
        }
        line.resize(SLOT - 1, b' ');
        line.push(b'\n');
        Ok(line)
    }
}

/// The slots of a witness file (a file of the earlier one-line layout is one
/// slot): the parsed head with the highest seq. A slot that does not parse
/// was torn by a crash while the other was intact, so it is skipped; only a
/// file with no readable slot is an error.
fn newest_slot(text: &str) -> Result<Head, String> {
    let mut newest: Option<Head> = None;
    let mut first_error = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match serde_json::from_str::<Head>(line) {
            Ok(head) => {
                if newest.as_ref().is_none_or(|n| head.seq >= n.seq) {
                    newest = Some(head);
                }
            }
            Err(e) => {
                first_error.get_or_insert_with(|| format!("cannot parse: {e}"));
            }
        }
    }
    newest.ok_or_else(|| first_error.unwrap_or_else(|| "is empty".to_owned()))
}

/// The writer's handle on `head.json`: which slot the next head overwrites.
#[derive(Debug)]
pub(crate) struct Witness {
    dir: PathBuf,
    open: Option<(File, u64)>,
}

impl Witness {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            open: None,
        }
    }

    /// Record `head` durably. The first write of a process lays the file out
    /// afresh (both slots, written aside and renamed over, so an older layout
    /// or a damaged file is replaced whole); later ones overwrite a slot.
    pub fn write(&mut self, head: &Head) -> io::Result<()> {
        let slot = head.slot()?;
        if let Some((file, next)) = &mut self.open {
            let result = file
                .write_all_at(&slot, *next * SLOT as u64)
                .and_then(|()| file.sync_data());
            if result.is_ok() {
                *next ^= 1;
            } else {
                // Start over from a fresh file at the next commit.
                self.open = None;
            }
            return result;
        }
        let path = Head::path(&self.dir);
        let tmp = self.dir.join(format!("{HEAD_FILE}.tmp"));
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&slot)?;
        file.write_all(&slot)?;
        file.sync_data()?;
        fs::rename(&tmp, &path)?;
        // The renamed file is the one we keep writing: the directory is not
        // synced, since losing the rename in a crash leaves the previous
        // witness, which is still a valid lower bound.
        self.open = Some((file, 0));
        Ok(())
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
        let mut witness = Witness::new(dir.path());
        witness.write(&head).unwrap();
        let read = Head::read(dir.path()).unwrap().unwrap();
        assert_eq!(read, head);
        assert!(read.verify(&key.public_key()));
        let mut forged = read;
        forged.seq = 3;
        assert!(!forged.verify(&key.public_key()));
        fs::write(Head::path(dir.path()), "{").unwrap();
        assert!(Head::read(dir.path()).is_err());
    }

    #[test]
    fn slots_alternate_and_a_torn_slot_falls_back_to_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let key = AuditKey::generate();
        let mut witness = Witness::new(dir.path());
        for seq in 1..=5 {
            witness.write(&Head::sign(seq, "h", 0, &key)).unwrap();
            assert_eq!(Head::read(dir.path()).unwrap().unwrap().seq, seq);
        }
        let path = Head::path(dir.path());
        let text = fs::read(&path).unwrap();
        assert_eq!(text.len(), 2 * SLOT, "two slots, written in place");
        // Seq 5 went to slot 0 (1: both, 2: 0, 3: 1, 4: 0... counting the
        // fresh layout as the first): tear whichever holds the newest.
        let newest_at = if String::from_utf8_lossy(&text[..SLOT]).contains("\"seq\":5") {
            0
        } else {
            SLOT
        };
        let mut torn = text.clone();
        torn[newest_at + 40..newest_at + SLOT - 1].fill(0);
        fs::write(&path, &torn).unwrap();
        assert_eq!(Head::read(dir.path()).unwrap().unwrap().seq, 4);
        // Both torn: unreadable, and said so.
        torn[(SLOT - newest_at) + 40..(SLOT - newest_at) + SLOT - 1].fill(0);
        fs::write(&path, &torn).unwrap();
        assert!(Head::read(dir.path()).unwrap_err().contains("cannot parse"));
    }

    #[test]
    fn a_one_line_witness_of_the_earlier_layout_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let key = AuditKey::generate();
        let head = Head::sign(7, "abc", 6, &key);
        let body = canonical(&serde_json::to_value(&head).unwrap());
        fs::write(Head::path(dir.path()), format!("{body}\n")).unwrap();
        assert_eq!(Head::read(dir.path()).unwrap().unwrap(), head);
        let mut witness = Witness::new(dir.path());
        witness.write(&Head::sign(8, "def", 6, &key)).unwrap();
        assert_eq!(Head::read(dir.path()).unwrap().unwrap().seq, 8);
    }
}
