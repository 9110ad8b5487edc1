//! Following the log from a seq onwards, across files: how sinks and the
//! index catch up. Only events up to a caller-given limit (the durable head)
//! are returned, so bytes of a batch still being written are never read as
//! events.

use std::io;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::chain::{Line, parse_line};
use crate::files::{self, Lines, display_name};

#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub seq: u64,
    pub hash: String,
    pub event: Value,
}

struct Position {
    path: PathBuf,
    first_seq: u64,
    offset: u64,
    line: u64,
    /// A newer file was seen: once this one is read to its end again it is
    /// finished and reading moves on.
    newer_seen: bool,
}

pub(crate) struct LogTail {
    dir: PathBuf,
    next_seq: u64,
    position: Option<Position>,
}

impl LogTail {
    /// Read events after `after_seq`.
    pub fn new(dir: &Path, after_seq: u64) -> Self {
        Self {
            dir: dir.to_owned(),
            next_seq: after_seq + 1,
            position: None,
        }
    }

    /// Up to `max` events with seq from `next_seq()` to `limit`, in order.
    pub fn read(&mut self, max: usize, limit: u64) -> io::Result<Vec<Record>> {
        let mut out = Vec::new();
        while out.len() < max && self.next_seq <= limit {
            if self.position.is_none() && !self.locate()? {
                break;
            }
            let Some(position) = self.position.as_mut() else {
                break;
            };
            let mut lines = Lines::open_at(&position.path, position.offset, position.line)?;
            let mut at_end = true;
            while out.len() < max {
                let Some(line) = lines.next_line()? else {
                    break;
                };
                if !line.complete {
                    break;
                }
                let parsed = line
                    .text
                    .map_err(|_| "not UTF-8".to_owned())
                    .and_then(|t| parse_line(&t));
                match parsed {
                    Ok(Line::Event {
                        seq, hash, event, ..
                    }) => {
                        if seq > limit {
                            at_end = false;
                            break;
                        }
                        if seq >= self.next_seq {
                            if seq != self.next_seq {
                                tracing::warn!(file = %display_name(&position.path), line = line.number, expected = self.next_seq, found = seq, "audit log has a gap; run `vestibule audit verify`");
                            }
                            self.next_seq = seq + 1;
                            out.push(Record { seq, hash, event });
                        }
                    }
                    Ok(Line::Checkpoint(_)) => {}
                    Err(reason) => {
                        tracing::warn!(file = %display_name(&position.path), line = line.number, %reason, "skipping an unreadable audit log line; run `vestibule audit verify`");
                    }
                }
                position.offset = line.offset + line.len;
                position.line = line.number;
            }
            if out.len() >= max || !at_end || self.next_seq > limit {
                break;
            }
            // End of this file: move on only if a newer file exists, and only
            // after reading this one once more, since it may have grown between
            // our read and the rotation.
            if position.newer_seen {
                let first_seq = position.first_seq;
                match files::list(&self.dir)?
                    .into_iter()
                    .find(|f| f.first_seq > first_seq)
                {
                    Some(next) => {
                        self.position = Some(Position {
                            path: next.path,
                            first_seq: next.first_seq,
                            offset: 0,
                            line: 0,
                            newer_seen: false,
                        });
                    }
                    None => break,
                }
            } else if files::list(&self.dir)?
                .iter()
                .any(|f| f.first_seq > position.first_seq)
            {
                position.newer_seen = true;
            } else {
                break;
            }
        }
        Ok(out)
    }

    /// Find the file that should hold `next_seq`.
    fn locate(&mut self) -> io::Result<bool> {
        let list = files::list(&self.dir)?;
        let found = list
            .iter()
            .rev()
            .find(|f| f.first_seq <= self.next_seq)
            .or_else(|| list.first());
        Ok(match found {
            Some(file) => {
                self.position = Some(Position {
                    path: file.path.clone(),
                    first_seq: file.first_seq,
                    offset: 0,
                    line: 0,
                    newer_seen: false,
                });
                true
            }
            None => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::key::AuditKey;
    use crate::logstate::{LogOptions, LogState};

    #[test]
    fn follows_the_chain_across_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let key = Arc::new(AuditKey::generate());
        let options = LogOptions {
            checkpoint_every: 1000,
            max_file_bytes: 200,
        };
        let mut log = LogState::open(dir.path(), key, options).unwrap();
        let batch: Vec<String> = (0..3).map(|i| format!("{{\"n\":{i}}}")).collect();
        for _ in 0..4 {
            log.commit(&batch, false).unwrap();
        }
        assert!(files::list(dir.path()).unwrap().len() > 2);

        let mut tail = LogTail::new(dir.path(), 2);
        let first = tail.read(4, 12).unwrap();
        assert_eq!(
            first.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [3, 4, 5, 6]
        );
        let rest = tail.read(100, 10).unwrap();
        assert_eq!(
            rest.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [7, 8, 9, 10]
        );
        assert!(tail.read(100, 10).unwrap().is_empty());
        log.commit(&batch, false).unwrap();
        let more = tail.read(100, 15).unwrap();
        assert_eq!(more.first().map(|r| r.seq), Some(11));
        assert_eq!(more.last().map(|r| r.seq), Some(15));
    }
}
