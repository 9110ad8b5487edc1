//! Audit events per second with chaining, signing and durability on: every
//! `append` returns only after its group commit is synced.
//!
//! `cargo run --release -p vestibule-audit --example throughput -- [EVENTS] [CONCURRENCY] [DIR]`
//! (defaults: 20000 events, 64 concurrent appenders, a temporary directory;
//! pass a DIR on the disk you care about, since /tmp may be memory).

use std::time::Instant;

use vestibule_audit::{Action, AuditEvent, AuditKey, AuditWriter, Outcome, WriterOptions, verify};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let events: u64 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    let concurrency: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(64);
    let temp = tempfile::tempdir()?;
    let dir = match args.next() {
        Some(dir) => std::path::PathBuf::from(dir),
        None => temp.path().join("audit"),
    };
    let key = AuditKey::generate();
    let public = key.public_key();
    let (handle, task) = AuditWriter::spawn(&dir, key, WriterOptions::default()).await?;

    let per_task = events / concurrency.max(1);
    let started = Instant::now();
    let mut joins = Vec::new();
    for t in 0..concurrency {
        let handle = handle.clone();
        joins.push(tokio::spawn(async move {
            for i in 0..per_task {
                let event = AuditEvent::new(Action::SessionStart, Outcome::Success)
                    .user(format!("user{t}"))
                    .target("web1")
                    .login("deploy")
                    .session(format!("s-{t}-{i}"))
                    .source("192.0.2.1:50000".parse().expect("literal address"));
                handle.append(event).await?;
            }
            Ok::<_, vestibule_audit::AuditError>(())
        }));
    }
    for join in joins {
        join.await??;
    }
    let elapsed = started.elapsed();
    let stats = handle.stats();
    handle.shutdown().await?;
    task.await??;

    let written = stats.events_written;
    println!("dir                {}", dir.display());
    println!("appenders          {concurrency}");
    println!("events             {written}");
    println!("seconds            {:.3}", elapsed.as_secs_f64());
    println!(
        "events per second  {:.0}",
        written as f64 / elapsed.as_secs_f64()
    );
    println!("group commits      {}", stats.batches);
    println!(
        "events per commit  {:.1}",
        written as f64 / stats.batches.max(1) as f64
    );
    let started = Instant::now();
    let report = verify(&dir, &public)?;
    println!(
        "verify             {} ({:.3} s)",
        if report.is_ok() { "OK" } else { "PROBLEMS" },
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
