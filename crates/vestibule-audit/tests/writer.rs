//! The writer: group commit, acknowledgement after sync, the chain across
//! restarts, fire-and-forget recording, checkpoints on a timer.

mod common;

use std::time::Duration;

use vestibule_audit::{AuditKey, AuditWriter, WriterOptions, verify};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_syncs_and_get_distinct_seqs() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    let (handle, task, key) = common::start(&dir, common::options(1000)).await;
    let mut joins = Vec::new();
    for i in 0..400u64 {
        let handle = handle.clone();
        joins.push(tokio::spawn(async move {
            handle.append(common::event(i)).await
        }));
    }
    let mut seqs = Vec::new();
    for join in joins {
        seqs.push(join.await.unwrap().unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=400).collect::<Vec<_>>());
    let stats = handle.stats();
    assert_eq!((stats.events_written, stats.seq), (400, 400));
    assert!(
        stats.batches < 400,
        "group commit should batch concurrent appends: {stats:?}"
    );
    handle.shutdown().await.unwrap();
    task.await.unwrap().unwrap();
    let report = verify(&dir, &key).unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.last_checkpoint, Some(400), "shutdown signs the tail");
}

#[tokio::test]
async fn the_chain_continues_after_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    common::write_log(&dir, 5, 1000).await;
    let (handle, task, key) = common::start(&dir, common::options(1000)).await;
    assert_eq!(handle.stats().seq, 5);
    assert_eq!(handle.append(common::event(5)).await.unwrap(), 6);
    handle.shutdown().await.unwrap();
    task.await.unwrap().unwrap();
    let report = verify(&dir, &key).unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!((report.events, report.checkpoints), (6, 2));
}

#[tokio::test]
async fn a_restart_refuses_a_cut_log() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    common::write_log(&dir, 5, 1000).await;
    let path = common::log_files(&dir).remove(0);
    let lines = common::read_lines(&path);
    common::write_lines(&path, &lines[..3]);
    let key = AuditKey::load(&common::key_path(&dir)).unwrap();
    let err = AuditWriter::spawn(&dir, key, common::options(1000))
        .await
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(text.contains("tail was cut"), "{text}");
    assert!(text.contains("vestibule audit verify"), "{text}");
}

#[tokio::test]
async fn a_restart_refuses_another_key() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    common::write_log(&dir, 2, 1000).await;
    let err = AuditWriter::spawn(&dir, AuditKey::generate(), common::options(1000))
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("not signed by this audit key"),
        "{err}"
    );
}

#[tokio::test]
async fn record_never_waits_and_counts_drops() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    let options = WriterOptions {
        queue_capacity: 4,
        ..common::options(1000)
    };
    let (handle, task, key) = common::start(&dir, options).await;
    // On a current-thread runtime the writer cannot run while this loop
    // does, so everything past the queue's capacity is dropped.
    for i in 0..20 {
        handle.record(common::event(i));
    }
    assert_eq!(handle.dropped(), 16);
    handle.shutdown().await.unwrap();
    task.await.unwrap().unwrap();
    let report = verify(&dir, &key).unwrap();
    assert_eq!(report.events, 4);
    assert!(report.is_ok(), "{report}");
}

#[tokio::test]
async fn checkpoints_on_a_timer_and_on_request() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    let options = WriterOptions {
        checkpoint_interval: Duration::from_millis(100),
        ..common::options(1000)
    };
    let (handle, task, key) = common::start(&dir, options).await;
    handle.append(common::event(0)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(handle.stats().checkpoints, 1);
    assert_eq!(verify(&dir, &key).unwrap().last_checkpoint, Some(1));

    handle.append(common::event(1)).await.unwrap();
    assert_eq!(handle.checkpoint().await.unwrap(), 2);
    assert_eq!(handle.stats().checkpoints, 2);
    handle.shutdown().await.unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(
        verify(&dir, &key).unwrap().checkpoints,
        2,
        "nothing new to sign at shutdown"
    );
}

#[tokio::test]
async fn the_head_watch_follows_commits() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    let (handle, task, _) = common::start(&dir, common::options(1000)).await;
    let mut head = handle.head();
    assert_eq!(*head.borrow_and_update(), 0);
    handle.append(common::event(0)).await.unwrap();
    head.changed().await.unwrap();
    assert_eq!(*head.borrow(), 1);
    drop(handle);
    // Dropping every handle stops the writer cleanly.
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn appends_after_shutdown_fail_clearly() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    let (handle, task, _) = common::start(&dir, common::options(1000)).await;
    handle.shutdown().await.unwrap();
    task.await.unwrap().unwrap();
    let err = handle.append(common::event(0)).await.unwrap_err();
    assert_eq!(err.to_string(), "the audit writer has stopped");
}
