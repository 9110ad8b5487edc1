//! The log as the writer holds it: the open file, the chain's tail, and the
//! synchronous work of one group commit (append the lines, sync once, replace
//! the head witness). It runs on a blocking thread, owned by the writer task.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::AuditError;
use crate::chain::{Checkpoint, GENESIS, Line, event_hash, event_line, parse_line};
use crate::files::{self, Lines, display_name};
use crate::key::AuditKey;
use crate::witness::{Head, Witness};

#[derive(Debug, Clone, Copy)]
pub(crate) struct LogOptions {
    pub checkpoint_every: u64,
    pub max_file_bytes: u64,
}

/// Why a batch is not durable; cloned to every caller waiting on it.
#[derive(Debug, Clone)]
pub(crate) struct CommitFailure {
    pub what: &'static str,
    pub path: String,
    pub source: Arc<io::Error>,
}

impl CommitFailure {
    pub fn to_error(&self) -> AuditError {
        AuditError::Commit {
            what: self.what,
            path: self.path.clone(),
            source: self.source.clone(),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct CommitOutcome {
    /// (seq, hash) of each event, in batch order.
    pub events: Vec<(u64, String)>,
    pub checkpoint: bool,
    pub witness_error: Option<io::Error>,
}

/// Failures the tests inject, since a full disk cannot be arranged portably.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) enum Fault {
    Write,
    Sync,
}

pub(crate) struct LogState {
    dir: PathBuf,
    key: Arc<AuditKey>,
    options: LogOptions,
    file: Option<File>,
    path: PathBuf,
    len: u64,
    seq: u64,
    hash: String,
    last_checkpoint: u64,
    since_checkpoint: u64,
    witness: Witness,
    /// Set after a failed sync: what reached the disk is unknown, so nothing
    /// more is written until the log is reopened (a restart).
    poisoned: Option<CommitFailure>,
    pub fault: Option<Fault>,
}

/// What the newest files say about the chain's tail.
#[derive(Default)]
struct Tail {
    last_event: Option<(u64, String)>,
    last_checkpoint: Option<u64>,
    witness_hash: Option<String>,
    /// Newest file: length up to its last complete line, and whether a
    /// partial line follows.
    valid_len: u64,
    torn: bool,
}

impl LogState {
    /// Open the log in `dir` (creating the directory 0700), find the chain's
    /// tail and check it against the head witness. A log shorter than its
    /// witness was cut: refuse to continue rather than overwrite the evidence.
    pub fn open(dir: &Path, key: Arc<AuditKey>, options: LogOptions) -> Result<Self, AuditError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(AuditError::io("cannot create audit directory", dir))?;
        let chain_error = |reason: String| AuditError::Chain {
            dir: dir.display().to_string(),
            reason,
        };
        let head = Head::read(dir).map_err(|e| chain_error(format!("head.json: {e}")))?;
        if let Some(head) = &head
            && !head.verify(&key.public_key())
        {
            return Err(chain_error(
                "head.json is not signed by this audit key".to_owned(),
            ));
        }
        let list = files::list(dir).map_err(AuditError::io("cannot list", dir))?;
        let witness_seq = head.as_ref().map(|h| h.seq);
        let mut tail = Tail::default();
        for (i, file) in list.iter().enumerate().rev() {
            let newest = i + 1 == list.len();
            scan(&file.path, newest, witness_seq, &mut tail).map_err(chain_error)?;
            if tail.last_event.is_some() && tail.last_checkpoint.is_some() {
                break;
            }
        }
        let (seq, hash) = tail.last_event.clone().unwrap_or((0, GENESIS.to_owned()));
        let last_checkpoint = tail.last_checkpoint.unwrap_or(0);
        if head.is_none() && seq > 0 {
            // Either a crash between the first sync and the first witness, or
            // a deletion. Refusing would leave no way forward; say it loudly
            // (verify run before this start reports it too).
            tracing::error!(
                dir = %dir.display(),
                seq,
                "audit head.json is missing although the log has events; a cut tail before this start cannot be ruled out"
            );
        }
        if let Some(head) = &head {
            if head.seq > seq {
                return Err(chain_error(format!(
                    "the log ends at seq {seq} but head.json says seq {} was written: its tail was cut",
                    head.seq
                )));
            }
            if let Some(found) = &tail.witness_hash
                && *found != head.hash
            {
                return Err(chain_error(format!(
                    "event {} does not have the hash head.json records",
                    head.seq
                )));
            }
            if head.last_checkpoint > last_checkpoint {
                return Err(chain_error(format!(
                    "head.json names a checkpoint at seq {} that the log does not have",
                    head.last_checkpoint
                )));
            }
        }
        let mut state = Self {
            dir: dir.to_owned(),
            key,
            options,
            file: None,
            path: PathBuf::new(),
            len: 0,
            seq,
            hash,
            last_checkpoint,
            since_checkpoint: seq.saturating_sub(last_checkpoint),
            witness: Witness::new(dir),
            poisoned: None,
            fault: None,
        };
        if let Some(newest) = list.last() {
            state.reopen(&newest.path, &tail)?;
        }
        Ok(state)
    }

    fn reopen(&mut self, path: &Path, tail: &Tail) -> Result<(), AuditError> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(AuditError::io("cannot open", path))?;
        if tail.torn {
            // Never acknowledged: a batch is acked only after its sync, and a
            // synced batch ends with a newline.
            tracing::warn!(
                file = %path.display(),
                "audit log ends with an incomplete line from an interrupted write; removing it"
            );
            file.set_len(tail.valid_len)
                .and_then(|()| file.sync_all())
                .map_err(AuditError::io("cannot truncate", path))?;
        }
        self.len = tail.valid_len;
        self.path = path.to_owned();
        if self.len < self.options.max_file_bytes {
            self.file = Some(file);
        }
        Ok(())
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn last_checkpoint(&self) -> u64 {
        self.last_checkpoint
    }

    pub fn since_checkpoint(&self) -> u64 {
        self.since_checkpoint
    }

    /// Append `batch` (canonical event JSON) and, when due or forced, a
    /// checkpoint; sync once; then replace the witness. On failure nothing
    /// of the batch counts and the chain's tail is unchanged.
    pub fn commit(
        &mut self,
        batch: &[String],
        force_checkpoint: bool,
    ) -> Result<CommitOutcome, CommitFailure> {
        if let Some(failure) = &self.poisoned {
            return Err(failure.clone());
        }
        let since = self.since_checkpoint + batch.len() as u64;
        if batch.is_empty() && !(force_checkpoint && since > 0) {
            return Ok(CommitOutcome::default());
        }
        self.ensure_file()?;
        let mut buf = String::with_capacity(batch.iter().map(|e| e.len() + 200).sum());
        let mut events = Vec::with_capacity(batch.len());
        let (mut seq, mut hash) = (self.seq, self.hash.clone());
        for canonical_event in batch {
            seq += 1;
            let next = event_hash(seq, &hash, canonical_event);
            buf.push_str(&event_line(seq, &hash, &next, canonical_event));
            events.push((seq, next.clone()));
            hash = next;
        }
        let rotate = self.len + buf.len() as u64 >= self.options.max_file_bytes;
        let checkpoint =
            since > 0 && (force_checkpoint || rotate || since >= self.options.checkpoint_every);
        if checkpoint {
            buf.push_str(&Checkpoint::sign(seq, &hash, self.last_checkpoint, &self.key).line());
        }
        self.write_and_sync(buf.as_bytes())?;

        self.len += buf.len() as u64;
        self.seq = seq;
        self.hash = hash;
        if checkpoint {
            self.last_checkpoint = seq;
            self.since_checkpoint = 0;
        } else {
            self.since_checkpoint = since;
        }
        if rotate {
            // The next batch starts a new file; this one ended on a checkpoint.
            self.file = None;
        }
        let witness_error = self
            .witness
            .write(&Head::sign(
                self.seq,
                self.hash.as_str(),
                self.last_checkpoint,
                &self.key,
            ))
            .err();
        Ok(CommitOutcome {
            events,
            checkpoint,
            witness_error,
        })
    }

    fn ensure_file(&mut self) -> Result<(), CommitFailure> {
        if self.file.is_some() {
            return Ok(());
        }
        let path = self.dir.join(files::file_name(self.seq + 1));
        let failure = |what, source| CommitFailure {
            what,
            path: path.display().to_string(),
            source: Arc::new(source),
        };
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| failure("create", e))?;
        // The new name must survive a crash along with the data in it.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| failure("sync the directory of", e))?;
        self.len = file.metadata().map(|m| m.len()).unwrap_or(0);
        self.file = Some(file);
        self.path = path;
        Ok(())
    }

    fn write_and_sync(&mut self, bytes: &[u8]) -> Result<(), CommitFailure> {
        let path = self.path.display().to_string();
        let fault = self.fault.take();
        let Some(file) = self.file.as_mut() else {
            return Err(CommitFailure {
                what: "write",
                path,
                source: Arc::new(io::Error::other("no open log file")),
            });
        };
        let written = match fault {
            Some(Fault::Write) => file
                .write_all(&bytes[..bytes.len() / 2])
                .and_then(|()| Err(io::Error::from_raw_os_error(28))),
            _ => file.write_all(bytes),
        };
        if let Err(source) = written {
            // Take the partial batch back out so the next one starts on a
            // line boundary; if even that fails, stop writing.
            let failure = CommitFailure {
                what: "write",
                path,
                source: Arc::new(source),
            };
            if let Err(e) = file.set_len(self.len) {
                tracing::error!(file = %failure.path, error = %e, "cannot roll back a failed audit write");
                self.poisoned = Some(failure.clone());
            }
            return Err(failure);
        }
        let synced = match fault {
            Some(Fault::Sync) => Err(io::Error::from_raw_os_error(5)),
            _ => file.sync_data(),
        };
        if let Err(source) = synced {
            // After a failed sync the kernel may have dropped the dirty pages
            // and a retry could report success falsely, so stop here.
            let failure = CommitFailure {
                what: "sync",
                path,
                source: Arc::new(source),
            };
            let _ = file.set_len(self.len);
            tracing::error!(file = %failure.path, error = %failure.source, "audit log sync failed; no more events are accepted until restart");
            self.poisoned = Some(failure.clone());
            return Err(failure);
        }
        Ok(())
    }
}

/// Read one file into `tail`, keeping what is already known from newer files.
fn scan(
    path: &Path,
    newest: bool,
    witness_seq: Option<u64>,
    tail: &mut Tail,
) -> Result<(), String> {
    let name = display_name(path);
    let mut lines = Lines::open(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
    let mut last_event = None;
    let mut last_checkpoint = None;
    let mut valid_len = 0;
    let mut torn = false;
    while let Some(line) = lines
        .next_line()
        .map_err(|e| format!("{name}: cannot read: {e}"))?
    {
        if !line.complete {
            torn = true;
            break;
        }
        let parsed = line
            .text
            .map_err(|_| "not UTF-8".to_owned())
            .and_then(|text| parse_line(&text))
            .map_err(|reason| format!("{name} line {}: {reason}", line.number))?;
        valid_len = line.offset + line.len;
        match parsed {
            Line::Event { seq, hash, .. } => {
                if Some(seq) == witness_seq {
                    tail.witness_hash = Some(hash.clone());
                }
                last_event = Some((seq, hash));
            }
            Line::Checkpoint(checkpoint) => last_checkpoint = Some(checkpoint.seq),
        }
    }
    if newest {
        tail.valid_len = valid_len;
        tail.torn = torn;
    }
    if tail.last_event.is_none() {
        tail.last_event = last_event;
    }
    if tail.last_checkpoint.is_none() {
        tail.last_checkpoint = last_checkpoint;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn options() -> LogOptions {
        LogOptions {
            checkpoint_every: 3,
            max_file_bytes: 1 << 20,
        }
    }

    fn events(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{{\"n\":{i}}}")).collect()
    }

    #[test]
    fn commits_checkpoints_and_continues_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(AuditKey::generate());
        let mut log = LogState::open(dir.path(), key.clone(), options()).unwrap();
        let out = log.commit(&events(2), false).unwrap();
        assert_eq!(out.events.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2]);
        assert!(!out.checkpoint);
        let out = log.commit(&events(1), false).unwrap();
        assert!(out.checkpoint, "every 3 events");
        assert!(out.witness_error.is_none());
        log.commit(&events(1), false).unwrap();
        drop(log);

        let mut log = LogState::open(dir.path(), key.clone(), options()).unwrap();
        assert_eq!(
            (log.seq(), log.last_checkpoint(), log.since_checkpoint()),
            (4, 3, 1)
        );
        assert!(log.commit(&[], true).unwrap().checkpoint);
        assert!(
            !log.commit(&[], true).unwrap().checkpoint,
            "nothing unsigned"
        );
    }

    #[test]
    fn an_incomplete_last_line_is_removed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(AuditKey::generate());
        let mut log = LogState::open(dir.path(), key.clone(), options()).unwrap();
        log.commit(&events(2), false).unwrap();
        let path = log.path.clone();
        drop(log);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"seq\":3,\"pre").unwrap();
        let mut log = LogState::open(dir.path(), key, options()).unwrap();
        assert_eq!(log.seq(), 2);
        log.commit(&events(1), false).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        // Three events and the checkpoint the third one triggers.
        assert_eq!(text.lines().count(), 4);
        assert!(text.lines().all(|l| parse_line(l).is_ok()));
    }

    #[test]
    fn a_cut_tail_refuses_to_continue() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(AuditKey::generate());
        let mut log = LogState::open(dir.path(), key.clone(), options()).unwrap();
        log.commit(&events(2), false).unwrap();
        let path = log.path.clone();
        drop(log);
        let text = fs::read_to_string(&path).unwrap();
        let first = text.lines().next().unwrap();
        fs::write(&path, format!("{first}\n")).unwrap();
        let err = LogState::open(dir.path(), key, options()).err().unwrap();
        assert!(err.to_string().contains("tail was cut"), "{err}");
    }

    #[test]
    fn rotates_on_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(AuditKey::generate());
        let opts = LogOptions {
            checkpoint_every: 1000,
            max_file_bytes: 300,
        };
        let mut log = LogState::open(dir.path(), key.clone(), opts).unwrap();
        for _ in 0..5 {
            log.commit(&events(2), false).unwrap();
        }
        let list = files::list(dir.path()).unwrap();
        assert!(list.len() >= 3, "{list:?}");
        assert_eq!(list[0].first_seq, 1);
        for file in &list[..list.len() - 1] {
            let text = fs::read_to_string(&file.path).unwrap();
            let last = text.lines().last().unwrap();
            assert!(matches!(parse_line(last).unwrap(), Line::Checkpoint(_)));
        }
        drop(log);
        let log = LogState::open(dir.path(), key, opts).unwrap();
        assert_eq!(log.seq(), 10);
    }

    #[test]
    fn a_failed_write_is_rolled_back_and_a_failed_sync_poisons() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(AuditKey::generate());
        let mut log = LogState::open(dir.path(), key.clone(), options()).unwrap();
        log.commit(&events(1), false).unwrap();
        log.fault = Some(Fault::Write);
        let err = log.commit(&events(2), false).unwrap_err();
        assert_eq!(err.source.raw_os_error(), Some(28));
        assert_eq!(log.seq(), 1);
        let out = log.commit(&events(1), false).unwrap();
        assert_eq!(out.events[0].0, 2);
        let text = fs::read_to_string(&log.path).unwrap();
        assert!(text.lines().all(|l| parse_line(l).is_ok()));

        log.fault = Some(Fault::Sync);
        assert!(log.commit(&events(1), false).is_err());
        let again = log.commit(&events(1), false).unwrap_err();
        assert_eq!(again.what, "sync");
        drop(log);
        let log = LogState::open(dir.path(), key, options()).unwrap();
        assert_eq!(log.seq(), 2);
    }
}
