//! A JSON-lines file for a log shipper (Filebeat, Vector, fluent-bit) to
//! pick up, rotated by size: `path`, then `path.1` (newest) to `path.<keep>`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tokio::fs::{self, File, OpenOptions};
use tokio::io::AsyncWriteExt;

use super::{Export, Pacing, StartAt, default_max_backoff};
use crate::timefmt::duration_str;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    pub name: String,
    pub path: PathBuf,
    /// Rotate when the file would grow past this.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Rotated files kept.
    #[serde(default = "default_keep")]
    pub keep: u32,
    #[serde(default)]
    pub start: StartAt,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "no_wait", with = "duration_str")]
    pub batch_interval: Duration,
    #[serde(default = "default_max_backoff", with = "duration_str")]
    pub max_backoff: Duration,
}

fn default_max_bytes() -> u64 {
    100 * 1024 * 1024
}

fn default_keep() -> u32 {
    5
}

fn default_batch_size() -> usize {
    1000
}

fn no_wait() -> Duration {
    // Writing a file is cheap: no reason to hold events back.
    Duration::ZERO
}

impl FileSinkConfig {
    pub(crate) fn pacing(&self) -> Pacing {
        Pacing {
            start: self.start,
            batch_size: self.batch_size,
            batch_interval: self.batch_interval,
            max_backoff: self.max_backoff,
        }
    }
}

pub(crate) struct FileSink {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: Option<(File, u64)>,
}

impl FileSink {
    pub fn new(config: &FileSinkConfig) -> Self {
        Self {
            path: config.path.clone(),
            max_bytes: config.max_bytes.max(1),
            keep: config.keep,
            file: None,
        }
    }

    pub async fn deliver(&mut self, batch: &[Export]) -> Result<(), String> {
        let mut text = String::new();
        for export in batch {
            text.push_str(&export.json());
            text.push('\n');
        }
        let result = self.write(text.as_bytes()).await;
        if result.is_err() {
            // Reopen next time: the file may be half-written or replaced.
            self.file = None;
        }
        result.map_err(|e| format!("{}: {e}", self.path.display()))
    }

    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if let Some((_, len)) = &self.file
            && *len > 0
            && len + bytes.len() as u64 > self.max_bytes
        {
            self.file = None;
            rotate(&self.path, self.keep).await?;
        }
        if self.file.is_none() {
            if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent).await?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&self.path)
                .await?;
            let len = file.metadata().await?.len();
            self.file = Some((file, len));
            if len > 0 && len + bytes.len() as u64 > self.max_bytes {
                self.file = None;
                rotate(&self.path, self.keep).await?;
                return Box::pin(self.write(bytes)).await;
            }
        }
        let Some((file, len)) = self.file.as_mut() else {
            return Err(std::io::Error::other("no open file"));
        };
        file.write_all(bytes).await?;
        file.sync_data().await?;
        *len += bytes.len() as u64;
        Ok(())
    }
}

async fn rotate(path: &Path, keep: u32) -> std::io::Result<()> {
    let numbered = |n: u32| {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    };
    if keep == 0 {
        return remove_if_present(path).await;
    }
    remove_if_present(&numbered(keep)).await?;
    for n in (1..keep).rev() {
        rename_if_present(&numbered(n), &numbered(n + 1)).await?;
    }
    rename_if_present(path, &numbered(1)).await
}

async fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

async fn rename_if_present(from: &Path, to: &Path) -> std::io::Result<()> {
    match fs::rename(from, to).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
