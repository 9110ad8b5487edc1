//! `verify`: walk every file of the log, recompute the chain, check the
//! checkpoints and the head witness, and say exactly where anything is wrong.
//!
//! After a problem the walk re-synchronises on the next record, so one edit
//! is reported once, at its own line, rather than as a cascade.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::AuditError;
use crate::chain::{GENESIS, Line, parse_line};
use crate::files::{self, Lines, display_name};
use crate::key::AuditPublicKey;
use crate::witness::Head;

/// Where a problem is and what it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// The log file's name, when the problem is in one.
    pub file: Option<String>,
    /// 1-based line number in that file.
    pub line: Option<u64>,
    pub seq: Option<u64>,
    #[serde(flatten)]
    pub kind: ProblemKind,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProblemKind {
    /// A line (or file) that cannot be read as a log record.
    Unreadable {
        reason: String,
    },
    /// The event's content no longer matches its hash: it was edited.
    Changed,
    /// The record does not link to the one before it (`prev` differs from
    /// the previous record's hash): an event was inserted or replaced.
    BrokenLink,
    /// These seqs are nowhere in the log: events were deleted.
    Missing {
        from: u64,
        to: u64,
    },
    /// This event appears after a later one: events were reordered.
    Reordered {
        after: u64,
    },
    /// This seq was already seen: an event was inserted or duplicated.
    Duplicate,
    /// The file is named for another first seq than it holds.
    FileName {
        named_first: u64,
    },
    /// A checkpoint whose signature does not verify with the audit key.
    CheckpointSignature {
        signed_by: String,
    },
    /// A checkpoint that does not match the chain: events up to it were
    /// rewritten.
    CheckpointMismatch,
    /// A checkpoint that the next checkpoint or the head witness names is
    /// not in the log: it was deleted.
    CheckpointMissing {
        missing: u64,
    },
    /// The log ends before the seq the head witness recorded: its tail was
    /// cut.
    TailCut {
        head_seq: u64,
        last_seq: u64,
    },
    /// The event at the head witness's seq has another hash than recorded.
    HeadMismatch,
    HeadSignature,
    HeadMissing,
    HeadUnreadable {
        reason: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut place = Vec::new();
        if let Some(file) = &self.file {
            place.push(file.clone());
        }
        if let Some(line) = self.line {
            place.push(format!("line {line}"));
        }
        if let Some(seq) = self.seq {
            place.push(format!("seq {seq}"));
        }
        if place.is_empty() {
            place.push("head.json".to_owned());
        }
        write!(f, "{}: ", place.join(", "))?;
        match &self.kind {
            ProblemKind::Unreadable { reason } => write!(f, "unreadable record: {reason}"),
            ProblemKind::Changed => write!(f, "event changed: its content does not match its hash"),
            ProblemKind::BrokenLink => write!(
                f,
                "chain broken: `prev` is not the hash of the event before (an event inserted or replaced here)"
            ),
            ProblemKind::Missing { from, to } if from == to => {
                write!(f, "event {from} deleted (missing before this line)")
            }
            ProblemKind::Missing { from, to } => {
                write!(
                    f,
                    "events {from} to {to} deleted (missing before this line)"
                )
            }
            ProblemKind::Reordered { after } => {
                write!(f, "events reordered: this event comes after event {after}")
            }
            ProblemKind::Duplicate => write!(f, "event inserted: this seq appears twice"),
            ProblemKind::FileName { named_first } => write!(
                f,
                "file is named for seq {named_first} but starts with another event"
            ),
            ProblemKind::CheckpointSignature { signed_by } => write!(
                f,
                "checkpoint signature does not verify with the audit key (it names {signed_by})"
            ),
            ProblemKind::CheckpointMismatch => write!(
                f,
                "checkpoint does not match the chain: events up to here were rewritten"
            ),
            ProblemKind::CheckpointMissing { missing } => {
                write!(f, "checkpoint at seq {missing} deleted")
            }
            ProblemKind::TailCut { head_seq, last_seq } => write!(
                f,
                "tail cut: the log ends at seq {last_seq} but head.json records seq {head_seq}"
            ),
            ProblemKind::HeadMismatch => write!(
                f,
                "head.json records another hash for this event: events up to here were rewritten"
            ),
            ProblemKind::HeadSignature => {
                write!(f, "head.json signature does not verify with the audit key")
            }
            ProblemKind::HeadMissing => {
                write!(f, "head.json is missing, so a cut tail cannot be ruled out")
            }
            ProblemKind::HeadUnreadable { reason } => write!(f, "head.json {reason}"),
        }
    }
}

/// What `verify` found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VerifyReport {
    pub dir: String,
    pub files: usize,
    pub events: u64,
    pub checkpoints: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// The last checkpoint whose signature verified.
    pub last_checkpoint: Option<u64>,
    /// The seq the head witness records.
    pub head_seq: Option<u64>,
    /// A last line without its newline in the newest file: a write in
    /// progress or an interrupted one, never acknowledged; not a problem.
    pub incomplete_last_line: Option<String>,
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let range = match (self.first_seq, self.last_seq) {
            (Some(a), Some(b)) => format!(" (seq {a} to {b})"),
            _ => String::new(),
        };
        write!(
            f,
            "{}: {} events{range} in {} file(s), {} checkpoint(s)",
            self.dir, self.events, self.files, self.checkpoints
        )?;
        match self.last_checkpoint {
            Some(seq) => writeln!(f, ", last checkpoint at seq {seq}")?,
            None => writeln!(f, ", no checkpoint yet")?,
        }
        if let (Some(last), Some(head)) = (self.last_seq, self.head_seq) {
            let signed = self.last_checkpoint.unwrap_or(0);
            if last > signed && head >= last {
                writeln!(
                    f,
                    "note: events {} to {last} are covered by the head witness only (the next checkpoint will sign them)",
                    signed + 1
                )?;
            } else if last > head && last > signed {
                writeln!(
                    f,
                    "warning: events {} to {last} come after the head witness (seq {head}) and no signature covers them",
                    head.max(signed) + 1
                )?;
            }
        }
        if let Some(place) = &self.incomplete_last_line {
            writeln!(
                f,
                "note: {place} is incomplete (a write in progress or interrupted); ignored"
            )?;
        }
        for problem in &self.problems {
            writeln!(f, "PROBLEM {problem}")?;
        }
        if self.is_ok() {
            write!(f, "OK")
        } else {
            write!(f, "{} problem(s) found", self.problems.len())
        }
    }
}

struct Walk<'a> {
    key: &'a AuditPublicKey,
    report: VerifyReport,
    /// The chain's position: the highest-seq event seen and its stored hash.
    last: Option<(u64, String)>,
    /// Seq ranges skipped so far, with where the skip was seen.
    gaps: Vec<(u64, u64, String, u64)>,
    checkpoints_seen: HashSet<u64>,
    last_checkpoint_seen: u64,
    /// A checkpoint with a bad signature came after `last_checkpoint_seen`.
    unverified_checkpoint: bool,
    any_unverified: bool,
    head_seq: Option<u64>,
    head_hash_found: Option<String>,
}

/// Check the log in `dir` against the audit public key.
pub fn verify(dir: &Path, key: &AuditPublicKey) -> Result<VerifyReport, AuditError> {
    // The witness first: the log only grows after it is read, so a live log
    // is never shorter than the witness we hold.
    let head = Head::read(dir);
    let list = files::list(dir).map_err(AuditError::io("cannot list", dir))?;
    let mut walk = Walk {
        key,
        report: VerifyReport {
            dir: dir.display().to_string(),
            files: list.len(),
            ..VerifyReport::default()
        },
        last: None,
        gaps: Vec::new(),
        checkpoints_seen: HashSet::new(),
        last_checkpoint_seen: 0,
        unverified_checkpoint: false,
        any_unverified: false,
        head_seq: head.as_ref().ok().and_then(|h| h.as_ref().map(|h| h.seq)),
        head_hash_found: None,
    };
    for (i, file) in list.iter().enumerate() {
        walk.file(&file.path, file.first_seq, i + 1 == list.len());
    }
    Ok(walk.finish(head))
}

impl Walk<'_> {
    fn problem(&mut self, file: &str, line: Option<u64>, seq: Option<u64>, kind: ProblemKind) {
        self.report.problems.push(Problem {
            file: Some(file.to_owned()),
            line,
            seq,
            kind,
        });
    }

    fn file(&mut self, path: &Path, named_first: u64, newest: bool) {
        let name = display_name(path);
        let mut lines = match Lines::open(path) {
            Ok(lines) => lines,
            Err(e) => {
                let reason = format!("cannot open: {e}");
                return self.problem(&name, None, None, ProblemKind::Unreadable { reason });
            }
        };
        let mut first_event = true;
        loop {
            let line = match lines.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(e) => {
                    let reason = format!("cannot read: {e}");
                    return self.problem(&name, None, None, ProblemKind::Unreadable { reason });
                }
            };
            if !line.complete && newest {
                self.report.incomplete_last_line = Some(format!("{name} line {}", line.number));
                break;
            }
            let parsed = line
                .text
                .map_err(|_| "not UTF-8".to_owned())
                .and_then(|text| parse_line(&text));
            match parsed {
                Err(reason) => self.problem(
                    &name,
                    Some(line.number),
                    None,
                    ProblemKind::Unreadable { reason },
                ),
                Ok(Line::Event {
                    seq,
                    prev,
                    hash,
                    event,
                }) => {
                    if first_event && seq != named_first {
                        self.problem(
                            &name,
                            Some(line.number),
                            Some(seq),
                            ProblemKind::FileName { named_first },
                        );
                    }
                    first_event = false;
                    let computed = Line::computed_hash(seq, &prev, &event);
                    self.event(&name, line.number, seq, &prev, hash, computed);
                }
                Ok(Line::Checkpoint(checkpoint)) => {
                    self.checkpoint(&name, line.number, &checkpoint);
                }
            }
        }
    }

    fn event(
        &mut self,
        file: &str,
        line: u64,
        seq: u64,
        prev: &str,
        hash: String,
        computed: String,
    ) {
        self.report.events += 1;
        self.report.first_seq = Some(self.report.first_seq.map_or(seq, |s| s.min(seq)));
        if computed != hash {
            self.problem(file, Some(line), Some(seq), ProblemKind::Changed);
        }
        if Some(seq) == self.head_seq && self.head_hash_found.is_none() {
            self.head_hash_found = Some(hash.clone());
        }
        let (last_seq, last_hash) = match &self.last {
            Some((s, h)) => (*s, h.as_str()),
            None => (0, GENESIS),
        };
        let expected = last_seq + 1;
        if seq == expected {
            if prev != last_hash {
                self.problem(file, Some(line), Some(seq), ProblemKind::BrokenLink);
            }
        } else if seq > expected {
            self.gaps.push((expected, seq - 1, file.to_owned(), line));
        } else if let Some(i) = self.gaps.iter().position(|g| g.0 <= seq && seq <= g.1) {
            let (from, to, gap_file, gap_line) = self.gaps.remove(i);
            if from < seq {
                self.gaps.push((from, seq - 1, gap_file.clone(), gap_line));
            }
            if seq < to {
                self.gaps.push((seq + 1, to, gap_file, gap_line));
            }
            self.problem(
                file,
                Some(line),
                Some(seq),
                ProblemKind::Reordered { after: last_seq },
            );
            return;
        } else {
            self.problem(file, Some(line), Some(seq), ProblemKind::Duplicate);
            return;
        }
        self.last = Some((seq, hash));
    }

    fn checkpoint(&mut self, file: &str, line: u64, checkpoint: &crate::chain::Checkpoint) {
        let seq = Some(checkpoint.seq);
        if !checkpoint.verify(self.key) {
            let signed_by = checkpoint.key.clone();
            self.problem(
                file,
                Some(line),
                seq,
                ProblemKind::CheckpointSignature { signed_by },
            );
            // Its fields cannot be trusted, but the next checkpoint should not
            // also be reported as following a deleted one.
            self.unverified_checkpoint = true;
            self.any_unverified = true;
            return;
        }
        let matches = self
            .last
            .as_ref()
            .is_some_and(|(s, h)| *s == checkpoint.seq && *h == checkpoint.hash);
        if !matches {
            self.problem(file, Some(line), seq, ProblemKind::CheckpointMismatch);
        }
        if checkpoint.prev_checkpoint > self.last_checkpoint_seen && !self.unverified_checkpoint {
            let missing = checkpoint.prev_checkpoint;
            self.problem(
                file,
                Some(line),
                seq,
                ProblemKind::CheckpointMissing { missing },
            );
        }
        self.checkpoints_seen.insert(checkpoint.seq);
        self.last_checkpoint_seen = checkpoint.seq;
        self.unverified_checkpoint = false;
        self.report.checkpoints += 1;
        if matches {
            self.report.last_checkpoint = Some(checkpoint.seq);
        }
    }

    fn finish(mut self, head: Result<Option<Head>, String>) -> VerifyReport {
        self.gaps.sort_by_key(|g| g.0);
        for (from, to, file, line) in std::mem::take(&mut self.gaps) {
            self.problem(&file, Some(line), None, ProblemKind::Missing { from, to });
        }
        let last_seq = self.last.as_ref().map(|(s, _)| *s);
        self.report.last_seq = last_seq;
        let head_problem = |kind| Problem {
            file: None,
            line: None,
            seq: None,
            kind,
        };
        match head {
            Err(reason) => self
                .report
                .problems
                .push(head_problem(ProblemKind::HeadUnreadable { reason })),
            Ok(None) if self.report.events > 0 => {
                self.report
                    .problems
                    .push(head_problem(ProblemKind::HeadMissing));
            }
            Ok(None) => {}
            Ok(Some(head)) => {
                self.report.head_seq = Some(head.seq);
                if !head.verify(self.key) {
                    self.report
                        .problems
                        .push(head_problem(ProblemKind::HeadSignature));
                } else {
                    let last = last_seq.unwrap_or(0);
                    if head.seq > last {
                        self.report
                            .problems
                            .push(head_problem(ProblemKind::TailCut {
                                head_seq: head.seq,
                                last_seq: last,
                            }));
                    } else if let Some(found) = &self.head_hash_found
                        && *found != head.hash
                    {
                        self.report.problems.push(Problem {
                            seq: Some(head.seq),
                            ..head_problem(ProblemKind::HeadMismatch)
                        });
                    }
                    if head.last_checkpoint > 0
                        && !self.any_unverified
                        && !self.checkpoints_seen.contains(&head.last_checkpoint)
                    {
                        self.report
                            .problems
                            .push(head_problem(ProblemKind::CheckpointMissing {
                                missing: head.last_checkpoint,
                            }));
                    }
                }
            }
        }
        self.report
    }
}
