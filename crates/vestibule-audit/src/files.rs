//! The log's files: `audit-<first seq, 20 digits>.jsonl`, so names sort in
//! chain order and a reader can find the file that holds a given seq.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

const PREFIX: &str = "audit-";
const SUFFIX: &str = ".jsonl";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogFile {
    pub path: PathBuf,
    /// The seq of the first event the file should hold, from its name.
    pub first_seq: u64,
}

pub(crate) fn file_name(first_seq: u64) -> String {
    format!("{PREFIX}{first_seq:020}{SUFFIX}")
}

pub(crate) fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// The log files in `dir`, oldest first. A missing directory has none.
pub(crate) fn list(dir: &Path) -> io::Result<Vec<LogFile>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(digits) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.strip_suffix(SUFFIX))
        else {
            continue;
        };
        if let Ok(first_seq) = digits.parse::<u64>() {
            files.push(LogFile {
                path: entry.path(),
                first_seq,
            });
        }
    }
    files.sort_by_key(|f| f.first_seq);
    Ok(files)
}

/// One line of a log file, as read.
pub(crate) struct RawLine {
    /// 1-based.
    pub number: u64,
    /// Byte offset of the line's start.
    pub offset: u64,
    /// Bytes the line takes in the file, newline included.
    pub len: u64,
    pub text: Result<String, std::string::FromUtf8Error>,
    /// False for a last line without its newline (a write in progress, or
    /// one cut short by a crash).
    pub complete: bool,
}

/// Reads a log file line by line from a byte offset, keeping line numbers.
pub(crate) struct Lines {
    reader: BufReader<File>,
    offset: u64,
    number: u64,
    buf: Vec<u8>,
}

impl Lines {
    pub fn open(path: &Path) -> io::Result<Self> {
        Self::open_at(path, 0, 0)
    }

    /// Start at `offset`, which must be a line start; `number` is the count
    /// of lines before it.
    pub fn open_at(path: &Path, offset: u64, number: u64) -> io::Result<Self> {
        let mut file = File::open(path)?;
        if offset > 0 {
            file.seek(SeekFrom::Start(offset))?;
        }
        Ok(Self {
            reader: BufReader::with_capacity(64 * 1024, file),
            offset,
            number,
            buf: Vec::new(),
        })
    }

    pub fn next_line(&mut self) -> io::Result<Option<RawLine>> {
        self.buf.clear();
        let read = self.reader.read_until(b'\n', &mut self.buf)?;
        if read == 0 {
            return Ok(None);
        }
        let complete = self.buf.last() == Some(&b'\n');
        if complete {
            self.buf.pop();
        }
        self.number += 1;
        let line = RawLine {
            number: self.number,
            offset: self.offset,
            len: read as u64,
            text: String::from_utf8(std::mem::take(&mut self.buf)),
            complete,
        };
        self.offset += read as u64;
        Ok(Some(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_in_seq_order_and_reads_lines() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(file_name(11)), "a\nb").unwrap();
        fs::write(dir.path().join(file_name(1)), "").unwrap();
        fs::write(dir.path().join("head.json"), "{}").unwrap();
        let files = list(dir.path()).unwrap();
        assert_eq!(
            files.iter().map(|f| f.first_seq).collect::<Vec<_>>(),
            [1, 11]
        );
        assert_eq!(
            display_name(&files[1].path),
            "audit-00000000000000000011.jsonl"
        );
        let mut lines = Lines::open(&files[1].path).unwrap();
        let a = lines.next_line().unwrap().unwrap();
        assert_eq!((a.number, a.offset, a.complete), (1, 0, true));
        let b = lines.next_line().unwrap().unwrap();
        assert_eq!((b.number, b.offset, b.complete), (2, 2, false));
        assert_eq!(b.text.unwrap(), "b");
        assert!(lines.next_line().unwrap().is_none());
        assert!(list(&dir.path().join("missing")).unwrap().is_empty());
    }
}
