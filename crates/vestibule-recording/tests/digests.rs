//! The integrity hash: either algorithm, chosen per store, and recordings
//! from before the choice existed.

mod common;

use std::path::Path;
use std::process::{Command, ExitCode};

use common::*;
use vestibule_recording::cli::{RecordingsCommand, run_recordings};
use vestibule_recording::{
    HashAlgorithm, RecordingDigest, RecordingStore, RecordingSummary, VerifyOutcome,
};

async fn store_hashing_with(dir: &Path, algorithm: HashAlgorithm) -> RecordingStore {
    let mut c = config(dir);
    c.hash = algorithm;
    RecordingStore::open(&c).await.unwrap()
}

async fn record(store: &RecordingStore, out: &[u8]) -> RecordingSummary {
    let rec = store.start(meta(exec("cat notes"))).await.unwrap();
    rec.output(out).unwrap();
    let summary = rec.finish().await.unwrap();
    assert!(summary.complete);
    summary
}

fn meta_file(dir: &Path, id: &str) -> std::path::PathBuf {
    dir.join(format!("{id}.meta.json"))
}

async fn verify_text(store: &RecordingStore) -> (ExitCode, String) {
    let mut out = Vec::new();
    let cmd = RecordingsCommand::Verify {
        id: None,
        json: false,
    };
    let code = run_recordings(store, cmd, &mut out).await.unwrap();
    (code, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn a_store_set_to_sha256_stores_what_sha256sum_computes() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_hashing_with(dir.path(), HashAlgorithm::Sha256).await;
    let summary = record(&store, b"a line\n\x00\x01 binary too").await;
    let sha256sum = Command::new("sha256sum")
        .arg(data_path(&store, &summary.id))
        .output()
        .unwrap();
    assert!(sha256sum.status.success());
    let hex = String::from_utf8(sha256sum.stdout).unwrap();
    let hex = hex.split_whitespace().next().unwrap().to_owned();
    assert_eq!(summary.digest.to_string(), format!("sha256:{hex}"));
    let info = store.get(&summary.id).await.unwrap();
    assert_eq!(info.digest, Some(summary.digest));
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(meta_file(store.dir(), &summary.id)).unwrap())
            .unwrap();
    assert_eq!(meta["digest"], format!("sha256:{hex}"), "{meta}");
}

#[tokio::test]
async fn each_recording_verifies_with_the_algorithm_it_was_stored_with() {
    let dir = tempfile::tempdir().unwrap();
    let blake3 = record(
        &store_hashing_with(dir.path(), HashAlgorithm::Blake3).await,
        b"made under blake3",
    )
    .await;
    let store = store_hashing_with(dir.path(), HashAlgorithm::Sha256).await;
    let sha256 = record(&store, b"made under sha256").await;
    assert_eq!(blake3.digest.algorithm(), HashAlgorithm::Blake3);
    assert_eq!(sha256.digest.algorithm(), HashAlgorithm::Sha256);

    let (code, text) = verify_text(&store).await;
    assert_eq!(code, ExitCode::SUCCESS, "{text}");
    assert!(text.contains(&format!("{} ok", blake3.id)), "{text}");

    // The same change to each file is caught by each hash.
    for id in [&blake3.id, &sha256.id] {
        let path = data_path(&store, id);
        let changed = std::fs::read_to_string(&path)
            .unwrap()
            .replace("made under", "edited aftr");
        std::fs::write(&path, changed).unwrap();
    }
    let reports = store.verify(None).await.unwrap();
    for (summary, algorithm) in [
        (&blake3, HashAlgorithm::Blake3),
        (&sha256, HashAlgorithm::Sha256),
    ] {
        let report = reports.iter().find(|r| r.id == summary.id).unwrap();
        let VerifyOutcome::Mismatch { expected, actual } = report.outcome else {
            panic!("{report:?}");
        };
        assert_eq!(expected, summary.digest);
        assert_eq!(actual.algorithm(), algorithm);
        let stored = std::fs::read(data_path(&store, &summary.id)).unwrap();
        assert_eq!(actual, RecordingDigest::of(algorithm, &stored));
    }
    let (code, text) = verify_text(&store).await;
    assert_eq!(code, ExitCode::FAILURE);
    assert!(
        text.contains(&format!("{} CHANGED: blake3:", blake3.id)),
        "{text}"
    );
}

/// Metadata as versions before the choice wrote it: a bare hex SHA-256 under
/// `sha256`, no `digest`.
#[tokio::test]
async fn recordings_stored_before_the_algorithm_was_named_still_verify() {
    let dir = tempfile::tempdir().unwrap();
    let old = record(
        &store_hashing_with(dir.path(), HashAlgorithm::Sha256).await,
        b"an old session",
    )
    .await;
    let path = meta_file(dir.path(), &old.id);
    let mut meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let fields = meta.as_object_mut().unwrap();
    fields.remove("digest").unwrap();
    fields.insert("sha256".into(), old.digest.hex().into());
    std::fs::write(&path, serde_json::to_string(&meta).unwrap()).unwrap();

    // Opened by a gateway on the default (BLAKE3) setting.
    let store = store(dir.path()).await;
    let info = store.get(&old.id).await.unwrap();
    assert_eq!(info.digest, Some(old.digest));
    let (code, text) = verify_text(&store).await;
    assert_eq!(code, ExitCode::SUCCESS, "{text}");
    assert!(text.contains(&format!("{} ok", old.id)), "{text}");

    std::fs::write(data_path(&store, &old.id), b"replaced\n").unwrap();
    let (code, text) = verify_text(&store).await;
    assert_eq!(code, ExitCode::FAILURE);
    assert!(
        text.contains(&format!(
            "{} CHANGED: {}, recorded sha256:{}",
            old.id,
            RecordingDigest::of(HashAlgorithm::Sha256, b"replaced\n"),
            old.digest.hex()
        )),
        "{text}"
    );
}

#[tokio::test]
async fn a_malformed_stored_digest_is_reported_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let summary = record(&store, b"x").await;
    let path = meta_file(store.dir(), &summary.id);
    let meta = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&summary.digest.to_string(), "md5:0123");
    std::fs::write(&path, meta).unwrap();
    let error = store.get(&summary.id).await.unwrap_err().to_string();
    assert!(
        error.contains("invalid recording digest \"md5:0123\""),
        "{error}"
    );
    // Checking everything must not pass over it.
    let (code, text) = verify_text(&store).await;
    assert_eq!(code, ExitCode::FAILURE, "{text}");
    assert!(
        text.contains(&format!(
            "{} MISSING: its metadata cannot be read",
            summary.id
        )) && text.contains("md5:0123"),
        "{text}"
    );
}
