//! `vestibule audit verify` and `vestibule audit key` through the run
//! functions the binary mounts.

mod common;

use clap::Parser;
use vestibule_audit::cli::{self, AuditCommand, CliContext, CliOutcome};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    audit: AuditCommand,
}

fn parse(args: &[&str]) -> AuditCommand {
    Cli::try_parse_from(std::iter::once("audit").chain(args.iter().copied()))
        .unwrap()
        .audit
}

async fn run(command: &AuditCommand, context: &CliContext<'_>) -> (CliOutcome, String) {
    let mut out = Vec::new();
    let outcome = cli::run(command, context, &mut out).await.unwrap();
    (outcome, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn verify_exits_non_zero_on_a_problem() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    common::write_log(&dir, 6, 4).await;
    let context = CliContext {
        dir: dir.clone(),
        key_path: common::key_path(&dir),
        pool: None,
    };

    let (outcome, text) = run(&parse(&["verify"]), &context).await;
    assert_eq!(outcome, CliOutcome::Success, "{text}");
    assert!(text.trim_end().ends_with("OK"), "{text}");

    let path = common::log_files(&dir).remove(0);
    let mut lines = common::read_lines(&path);
    lines.remove(1);
    common::write_lines(&path, &lines);
    let (outcome, text) = run(&parse(&["verify"]), &context).await;
    assert_eq!(outcome, CliOutcome::ProblemsFound);
    assert!(
        text.contains("PROBLEM audit-00000000000000000001.jsonl, line 2: event 2 deleted"),
        "{text}"
    );

    let (outcome, text) = run(&parse(&["verify", "--json"]), &context).await;
    assert_eq!(outcome, CliOutcome::ProblemsFound);
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["problems"][0]["kind"], "missing");
    assert_eq!(report["problems"][0]["line"], 2);
    assert_eq!(report["problems"][0]["from"], 2);
}

#[tokio::test]
async fn key_prints_what_verify_accepts() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("audit");
    let public = common::write_log(&dir, 2, 4).await;
    let context = CliContext {
        dir: dir.clone(),
        key_path: common::key_path(&dir),
        pool: None,
    };
    let (outcome, text) = run(&parse(&["key"]), &context).await;
    assert_eq!(outcome, CliOutcome::Success);
    assert_eq!(text.trim(), public.to_string());

    // Verify a copy elsewhere with only the public key, given inline or as
    // a file.
    let elsewhere = CliContext {
        dir: root.path().join("nowhere"),
        key_path: root.path().join("no.key"),
        pool: None,
    };
    let dir_arg = dir.display().to_string();
    let (outcome, _) = run(
        &parse(&["verify", "--dir", &dir_arg, "--public-key", text.trim()]),
        &elsewhere,
    )
    .await;
    assert_eq!(outcome, CliOutcome::Success);
    let pub_file = root.path().join("audit.pub");
    std::fs::write(&pub_file, &text).unwrap();
    let pub_arg = pub_file.display().to_string();
    let (outcome, _) = run(
        &parse(&["verify", "--dir", &dir_arg, "--public-key", &pub_arg]),
        &elsewhere,
    )
    .await;
    assert_eq!(outcome, CliOutcome::Success);

    let mut out = Vec::new();
    let err = cli::run(&parse(&["verify"]), &elsewhere, &mut out)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no.key"), "{err}");
}

#[test]
fn search_flags_parse() {
    let AuditCommand::Search(args) = parse(&[
        "search",
        "--user",
        "alice",
        "--target",
        "web1",
        "--type",
        "session.start",
        "--since",
        "2h",
        "--limit",
        "5",
        "--json",
    ]) else {
        panic!("not search");
    };
    assert_eq!(args.user.as_deref(), Some("alice"));
    assert_eq!(args.action.as_deref(), Some("session.start"));
    assert_eq!(args.since.as_deref(), Some("2h"));
    assert_eq!(args.limit, 5);
    assert!(args.json);
}
