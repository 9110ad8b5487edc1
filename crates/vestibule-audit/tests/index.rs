//! The search index: fed by the writer, searched with filters, rebuilt and
//! caught up from the files; and `vestibule audit search` on top of it.

mod common;

use std::path::Path;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use vestibule_audit::cli::{self, AuditCommand, CliContext, CliOutcome, SearchArgs};
use vestibule_audit::{AuditIndex, Order, SearchFilter, Timestamp, WriterOptions};

async fn pool(root: &Path) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(root.join("vestibule.db"))
        .create_if_missing(true);
    SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap()
}

/// 12 indexed events, i = 0..12 (seq i + 1).
async fn indexed_log(root: &Path) -> AuditIndex {
    let index = AuditIndex::open(pool(root).await).await.unwrap();
    let dir = root.join("audit");
    let options = WriterOptions {
        index: Some(index.clone()),
        ..common::options(1000)
    };
    let (handle, task, _) = common::start(&dir, options).await;
    for i in 0..12 {
        handle.append(common::event(i)).await.unwrap();
    }
    handle.shutdown().await.unwrap();
    assert_eq!(
        handle.stats().indexed_seq,
        12,
        "shutdown waits for the index"
    );
    task.await.unwrap().unwrap();
    index
}

fn seqs(found: &[vestibule_audit::StoredEvent]) -> Vec<u64> {
    found.iter().map(|s| s.seq).collect()
}

#[tokio::test]
async fn searches_by_user_target_action_and_time() {
    let root = tempfile::tempdir().unwrap();
    let index = indexed_log(root.path()).await;
    assert_eq!(index.max_seq().await.unwrap(), 12);

    let all = index.search(&SearchFilter::default()).await.unwrap();
    assert_eq!(
        seqs(&all),
        (1..=12).rev().collect::<Vec<_>>(),
        "newest first"
    );
    assert_eq!(all[0].event.user_name(), Some("bob"));

    let alice = SearchFilter {
        user: Some("alice".into()),
        order: Order::OldestFirst,
        ..SearchFilter::default()
    };
    assert_eq!(
        seqs(&index.search(&alice).await.unwrap()),
        [1, 3, 5, 7, 9, 11]
    );

    let db1_starts = SearchFilter {
        target: Some("db1".into()),
        action: Some("session.start".into()),
        ..SearchFilter::default()
    };
    // Odd i with i % 3 == 0: 3, 9 (seq 4, 10).
    assert_eq!(seqs(&index.search(&db1_starts).await.unwrap()), [10, 4]);

    for prefix in ["session.", "session.*"] {
        let sessions = SearchFilter {
            action: Some(prefix.into()),
            ..SearchFilter::default()
        };
        let found = index.search(&sessions).await.unwrap();
        assert_eq!(found.len(), 8, "{prefix}");
        assert!(
            found
                .iter()
                .all(|s| s.event.action().as_str().starts_with("session."))
        );
    }

    // Event i is at start + i minutes.
    let since = SearchFilter {
        since: Some(Timestamp::from_unix_millis(1_714_564_800_000 + 9 * 60_000)),
        limit: 2,
        ..SearchFilter::default()
    };
    assert_eq!(seqs(&index.search(&since).await.unwrap()), [12, 11]);

    let session = SearchFilter {
        session: Some("s-4".into()),
        ..SearchFilter::default()
    };
    assert_eq!(seqs(&index.search(&session).await.unwrap()), [5]);
}

#[tokio::test]
async fn reindex_rebuilds_and_start_catches_up() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    common::write_log(&dir, 7, 1000).await;

    let index = AuditIndex::open(pool(root.path()).await).await.unwrap();
    assert_eq!(index.max_seq().await.unwrap(), 0);
    assert_eq!(index.reindex(&dir).await.unwrap(), 7);
    assert_eq!(index.reindex(&dir).await.unwrap(), 7, "idempotent");

    // A writer started with an index behind the log fills the gap.
    let more = root.path().join("more");
    common::write_log(&more, 9, 1000).await;
    let fresh = AuditIndex::open(pool(&more).await).await.unwrap();
    let options = WriterOptions {
        index: Some(fresh.clone()),
        ..common::options(1000)
    };
    let (handle, task, _) = common::start(&more, options).await;
    handle.append(common::event(9)).await.unwrap();
    let mut indexed = 0;
    for _ in 0..100 {
        indexed = fresh
            .search(&SearchFilter {
                limit: 100,
                ..SearchFilter::default()
            })
            .await
            .unwrap()
            .len();
        if indexed == 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(indexed, 10);
    handle.shutdown().await.unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_rebuild_in_batches_of_several_statements_indexes_every_event_once() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    // 700 events: a first batch of 500 rows (two statements) and one of 200.
    common::write_log(&dir, 700, 1000).await;
    let index = AuditIndex::open(pool(root.path()).await).await.unwrap();
    assert_eq!(index.reindex(&dir).await.unwrap(), 700);
    assert_eq!(index.max_seq().await.unwrap(), 700);
    let all = index
        .search(&SearchFilter {
            limit: 1000,
            order: Order::OldestFirst,
            ..SearchFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(seqs(&all), (1..=700).collect::<Vec<_>>());
}

#[tokio::test]
async fn the_search_command_prints_a_table_or_json() {
    let root = tempfile::tempdir().unwrap();
    let index = indexed_log(root.path()).await;
    let args = SearchArgs {
        user: Some("alice".into()),
        target: None,
        action: Some("session.".into()),
        session: None,
        since: Some("2h".into()),
        until: None,
        limit: 50,
        oldest_first: false,
        json: false,
    };
    // "now" is 60 minutes after event 0, so 2h covers events 0..=11.
    let now = Timestamp::from_unix_millis(1_714_564_800_000 + 60 * 60_000);
    let mut out = Vec::new();
    let found = cli::run_search(&args, &index, now, &mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    // alice's session events: i = 0, 4, 6, 10.
    assert_eq!(seqs(&found), [11, 7, 5, 1]);
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("SEQ  TIME"), "{text}");
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("11   2024-05-01T12:10:00.000Z  session.end"),
        "{text}"
    );

    let args = SearchArgs {
        json: true,
        since: Some("2024-05-01T12:05:00Z".into()),
        ..args
    };
    let mut out = Vec::new();
    cli::run_search(&args, &index, now, &mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["seq"], 11);
    assert_eq!(rows[0]["event"]["user"]["name"], "alice");

    let bad = SearchArgs {
        since: Some("tomorrow".into()),
        ..args
    };
    let err = cli::run_search(&bad, &index, now, &mut Vec::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("30m, 2h, 7d"), "{err}");
}

#[tokio::test]
async fn search_without_a_database_is_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let context = CliContext {
        dir: root.path().join("audit"),
        key_path: root.path().join("audit.key"),
        pool: None,
    };
    let command = AuditCommand::Search(SearchArgs {
        user: None,
        target: None,
        action: None,
        session: None,
        since: None,
        until: None,
        limit: 10,
        oldest_first: false,
        json: false,
    });
    let err = cli::run(&command, &context, &mut Vec::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs the database"));
    let _ = CliOutcome::Success;
}

#[tokio::test]
async fn catch_up_indexes_what_the_log_holds_up_to_the_witness() {
    let root = tempfile::tempdir().unwrap();
    let index = AuditIndex::open(pool(root.path()).await).await.unwrap();
    let dir = root.path().join("audit");
    // No indexer: only the log and its witness.
    let (handle, task, _) = common::start(&dir, common::options(1000)).await;
    for i in 0..5 {
        handle.append(common::event(i)).await.unwrap();
    }
    handle.shutdown().await.unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(index.max_seq().await.unwrap(), 0);
    assert_eq!(index.catch_up(&dir).await.unwrap(), 5);
    assert_eq!(index.max_seq().await.unwrap(), 5);
    assert_eq!(index.catch_up(&dir).await.unwrap(), 0, "nothing new");
}
