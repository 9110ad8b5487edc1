//! `verify` finds each kind of tampering, at its own line, and nothing else.
//!
//! The log most tests use: 10 events with a checkpoint every 4 and a final
//! one at shutdown, one event per batch, so its lines are
//! e1 e2 e3 e4 cp4 e5 e6 e7 e8 cp8 e9 e10 cp10.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{log_files, read_lines, write_lines};
use vestibule_audit::{AuditKey, AuditPublicKey, Problem, ProblemKind, WriterOptions, verify};

struct Fixture {
    _root: tempfile::TempDir,
    dir: PathBuf,
    key: AuditPublicKey,
}

async fn fixture() -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    let key = common::write_log(&dir, 10, 4).await;
    Fixture {
        _root: root,
        dir,
        key,
    }
}

fn only_file(dir: &Path) -> PathBuf {
    let files = log_files(dir);
    assert_eq!(files.len(), 1);
    files[0].clone()
}

fn problems(dir: &Path, key: &AuditPublicKey) -> Vec<Problem> {
    let report = verify(dir, key).unwrap();
    println!("{report}");
    report.problems
}

fn at(problem: &Problem) -> (Option<u64>, Option<u64>) {
    (problem.line, problem.seq)
}

#[tokio::test]
async fn a_clean_log_verifies() {
    let f = fixture().await;
    let report = verify(&f.dir, &f.key).unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(
        (report.events, report.checkpoints, report.last_checkpoint),
        (10, 3, Some(10))
    );
    assert_eq!(
        (report.first_seq, report.last_seq, report.head_seq),
        (Some(1), Some(10), Some(10))
    );
    let text = report.to_string();
    assert!(text.contains("10 events (seq 1 to 10)"), "{text}");
    assert!(text.contains("last checkpoint at seq 10"), "{text}");
    assert!(text.ends_with("OK"), "{text}");
}

#[tokio::test]
async fn a_changed_byte_is_found_at_its_line() {
    let f = fixture().await;
    let path = only_file(&f.dir);
    let mut lines = read_lines(&path);
    assert!(lines[2].contains("\"alice\""));
    lines[2] = lines[2].replace("\"alice\"", "\"alicf\"");
    write_lines(&path, &lines);
    let found = problems(&f.dir, &f.key);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, ProblemKind::Changed);
    assert_eq!(at(&found[0]), (Some(3), Some(3)));
    let text = found[0].to_string();
    assert!(
        text.starts_with("audit-00000000000000000001.jsonl, line 3, seq 3: event changed"),
        "{text}"
    );
}

#[tokio::test]
async fn a_deleted_line_is_found() {
    let f = fixture().await;
    let path = only_file(&f.dir);
    let mut lines = read_lines(&path);
    lines.remove(5); // e5
    write_lines(&path, &lines);
    let found = problems(&f.dir, &f.key);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, ProblemKind::Missing { from: 5, to: 5 });
    assert_eq!(found[0].line, Some(6), "reported where the gap is seen");
}

#[tokio::test]
async fn swapped_lines_are_found() {
    let f = fixture().await;
    let path = only_file(&f.dir);
    let mut lines = read_lines(&path);
    lines.swap(5, 6); // e5 and e6
    write_lines(&path, &lines);
    let found = problems(&f.dir, &f.key);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, ProblemKind::Reordered { after: 6 });
    assert_eq!(at(&found[0]), (Some(7), Some(5)));
}

#[tokio::test]
async fn an_inserted_line_is_found() {
    let f = fixture().await;
    let path = only_file(&f.dir);
    let mut lines = read_lines(&path);
    let copy = lines[2].clone();
    lines.insert(3, copy);
    write_lines(&path, &lines);
    let found = problems(&f.dir, &f.key);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, ProblemKind::Duplicate);
    assert_eq!(at(&found[0]), (Some(4), Some(3)));
}

#[tokio::test]
async fn an_unparseable_inserted_line_is_found() {
    let f = fixture().await;
    let path = only_file(&f.dir);
    let mut lines = read_lines(&path);
    lines.insert(1, "{\"seq\": \"oops\"}".to_owned());
    write_lines(&path, &lines);
    let found = problems(&f.dir, &f.key);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(matches!(found[0].kind, ProblemKind::Unreadable { .. }));
    assert_eq!(found[0].line, Some(2));
}

#[tokio::test]
async fn a_rewritten_prefix_fails_its_checkpoint() {
    // Two logs under one key: copy the other log's first events over ours,
    // hashes and all, as someone rewriting history would.
    let root = tempfile::tempdir().unwrap();
    let ours = root.path().join("audit");
    let theirs = root.path().join("other");
    let key = common::write_log(&ours, 10, 4).await;
    let (handle, task, _) = common::start(&theirs, common::options(100)).await;
    for i in 0..4 {
        handle
            .append(common::event(i).reason("rewritten"))
            .await
            .unwrap();
    }
    handle.shutdown().await.unwrap();
    task.await.unwrap().unwrap();

    let path = only_file(&ours);
    let mut lines = read_lines(&path);
    let forged = read_lines(&only_file(&theirs));
    lines[..4].clone_from_slice(&forged[..4]);
    write_lines(&path, &lines);
    let found = problems(&ours, &key);
    let kinds: Vec<_> = found.iter().map(|p| (p.kind.clone(), p.line)).collect();
    assert_eq!(
        kinds,
        [
            (ProblemKind::CheckpointMismatch, Some(5)),
            (ProblemKind::BrokenLink, Some(6)),
        ]
    );
}

#[tokio::test]
async fn a_bad_checkpoint_signature_is_found() {
    let f = fixture().await;
    let path = only_file(&f.dir);
    let mut lines = read_lines(&path);
    assert!(lines[4].starts_with("{\"checkpoint\""));
    lines[4] = lines[4].replace("\"seq\":4", "\"seq\":3");
    write_lines(&path, &lines);
    let found = problems(&f.dir, &f.key);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(matches!(
        found[0].kind,
        ProblemKind::CheckpointSignature { .. }
    ));
    assert_eq!(found[0].line, Some(5));
}

#[tokio::test]
async fn another_key_fails_every_signature() {
    let f = fixture().await;
    let stranger = AuditKey::generate().public_key();
    let found = problems(&f.dir, &stranger);
    let signatures = found
        .iter()
        .filter(|p| matches!(p.kind, ProblemKind::CheckpointSignature { .. }))
        .count();
    assert_eq!(signatures, 3);
    assert!(found.iter().any(|p| p.kind == ProblemKind::HeadSignature));
}

#[tokio::test]
async fn a_deleted_checkpoint_is_found() {
    let f = fixture().await;
    let path = only_file(&f.dir);
    let mut lines = read_lines(&path);
    lines.remove(9); // cp8
    write_lines(&path, &lines);
    let found = problems(&f.dir, &f.key);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, ProblemKind::CheckpointMissing { missing: 8 });
    assert_eq!(at(&found[0]), (Some(12), Some(10)));
}

#[tokio::test]
async fn a_cut_tail_after_the_last_checkpoint_is_found() {
    // A crash (the task aborted): five events, no checkpoint, only the
    // head witness covers them.
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    let (handle, task, key) = common::start(&dir, common::options(100)).await;
    for i in 0..5 {
        handle.append(common::event(i)).await.unwrap();
    }
    task.abort();
    let _ = task.await;
    let report = verify(&dir, &key).unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.last_checkpoint, None);
    assert!(
        report
            .to_string()
            .contains("covered by the head witness only")
    );

    let path = only_file(&dir);
    let mut lines = read_lines(&path);
    lines.pop();
    write_lines(&path, &lines);
    let found = problems(&dir, &key);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].kind,
        ProblemKind::TailCut {
            head_seq: 5,
            last_seq: 4
        }
    );
    assert!(found[0].to_string().contains("tail cut"));
}

#[tokio::test]
async fn a_cut_tail_including_checkpoints_is_found() {
    let f = fixture().await;
    let path = only_file(&f.dir);
    let lines = read_lines(&path);
    write_lines(&path, &lines[..10]);
    let found = problems(&f.dir, &f.key);
    assert!(found.iter().any(|p| p.kind
        == ProblemKind::TailCut {
            head_seq: 10,
            last_seq: 8
        }));
}

#[tokio::test]
async fn a_missing_head_witness_is_a_problem() {
    let f = fixture().await;
    fs::remove_file(f.dir.join("head.json")).unwrap();
    let found = problems(&f.dir, &f.key);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].kind, ProblemKind::HeadMissing);
}

#[tokio::test]
async fn an_incomplete_last_line_is_only_a_note() {
    let f = fixture().await;
    let path = only_file(&f.dir);
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str("{\"seq\":11,\"pr");
    fs::write(&path, text).unwrap();
    let report = verify(&f.dir, &f.key).unwrap();
    assert!(report.is_ok(), "{report}");
    assert!(report.incomplete_last_line.is_some());
}

#[tokio::test]
async fn verify_follows_the_chain_across_rotated_files() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    let options = WriterOptions {
        max_file_bytes: 2000,
        ..common::options(1000)
    };
    let (handle, task, key) = common::start(&dir, options).await;
    for i in 0..30 {
        handle.append(common::event(i)).await.unwrap();
    }
    handle.shutdown().await.unwrap();
    task.await.unwrap().unwrap();
    let files = log_files(&dir);
    assert!(files.len() >= 4, "{files:?}");
    let report = verify(&dir, &key).unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!((report.events, report.files), (30, files.len()));

    // Remove a whole middle file: its events are missing, and its closing
    // checkpoint too.
    let removed_first: u64 = files[1]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .trim_start_matches("audit-")
        .trim_end_matches(".jsonl")
        .parse()
        .unwrap();
    fs::remove_file(&files[1]).unwrap();
    let found = problems(&dir, &key);
    assert!(
        found
            .iter()
            .any(|p| matches!(p.kind, ProblemKind::Missing { from, .. } if from == removed_first)),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| matches!(p.kind, ProblemKind::CheckpointMissing { .. }))
    );
}

#[tokio::test]
async fn an_empty_directory_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let report = verify(dir.path(), &AuditKey::generate().public_key()).unwrap();
    assert!(report.is_ok());
    assert_eq!(report.events, 0);
}
