//! The task that keeps the search index up with the log. It follows the
//! writer's durable head and indexes from the files, so a slow or locked
//! database never holds up a group commit, and an index that fell behind
//! (a crash, a new database) catches up by the same path.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::AuditIndex;
use crate::index::IndexMeta;
use crate::reader::LogTail;

/// Events per transaction.
const BATCH: usize = 1024;
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// After the head moves, how long to let further commits gather before
/// indexing them in one statement. Many connections' commits arrive within
/// this; indexing each alone cost a file open and a database write apiece.
/// Searches do not wait for this: `audit search` catches the index up to the
/// witness first.
const COALESCE: Duration = Duration::from_millis(100);

#[derive(Default)]
pub(crate) struct IndexProgress {
    pub indexed: AtomicU64,
    pub failures: AtomicU64,
}

pub(crate) async fn follow(
    index: AuditIndex,
    dir: PathBuf,
    mut head: watch::Receiver<u64>,
    progress: Arc<IndexProgress>,
) {
    let mut indexed = match index.max_seq().await {
        Ok(seq) => seq,
        Err(e) => {
            progress.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "cannot read the audit index; indexing from the start");
            0
        }
    };
    progress.indexed.store(indexed, Ordering::Relaxed);
    if indexed > *head.borrow() {
        tracing::warn!(
            indexed,
            head = *head.borrow(),
            "the audit index is ahead of the log (was the log replaced?); run `vestibule audit reindex`"
        );
    }
    let mut tail = Some(LogTail::new(&dir, indexed));
    let mut writer_alive = true;
    let mut backoff = Duration::from_millis(250);
    loop {
        let target = *head.borrow_and_update();
        while indexed < target {
            let Some(reader) = tail.take() else { return };
            let Ok((reader, read)) = tokio::task::spawn_blocking(move || {
                let mut reader = reader;
                let read = reader.read(BATCH, target);
                (reader, read)
            })
            .await
            else {
                return;
            };
            tail = Some(reader);
            let records = match read {
                Ok(records) if records.is_empty() => break,
                Ok(records) => records,
                Err(e) => {
                    progress.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "cannot read the audit log for the index");
                    if !writer_alive {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            let last = records.last().map_or(indexed, |r| r.seq);
            let rows: Vec<_> = records
                .into_iter()
                .map(|r| {
                    let meta = IndexMeta::from_value(&r.event);
                    (r.seq, r.hash, meta, crate::chain::canonical(&r.event))
                })
                .collect();
            // The same rows until they go in: the index must not skip any.
            while let Err(e) = index.insert(&rows).await {
                progress.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, up_to = last, "cannot index audit events; the log has them");
                if !writer_alive {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            backoff = Duration::from_millis(250);
            indexed = last;
            progress.indexed.store(indexed, Ordering::Relaxed);
        }
        if !writer_alive {
            return;
        }
        // Once the writer is gone, one last pass up to its final head.
        writer_alive = head.changed().await.is_ok();
        let until = tokio::time::Instant::now() + COALESCE;
        while writer_alive {
            match tokio::time::timeout_at(until, head.changed()).await {
                Ok(changed) => writer_alive = changed.is_ok(),
                Err(_elapsed) => break,
            }
        }
    }
}
