//! Session recordings in `serve` (the store and its maintenance) and the
//! `recordings`, `play` and `sessions watch` commands.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use vestibule_recording::cli::{PlayArgs, RecordingsCommand, WatchArgs};
use vestibule_recording::{RecordingInfo, RecordingStore, VerifyOutcome};

use crate::datadir::DataDir;

/// The recording store the configuration names (paths under the data dir).
pub async fn open(dir: &DataDir) -> Result<RecordingStore> {
    let config = dir.load_config()?;
    RecordingStore::open(&config.recording.clone().in_data_dir(&dir.root))
        .await
        .context("cannot open recording storage")
}

/// What a recording command ran: the exit status it asks for.
fn finished(code: ExitCode) -> Result<()> {
    if code == ExitCode::SUCCESS {
        Ok(())
    } else {
        bail!("see above")
    }
}

pub async fn recordings(dir: &DataDir, command: RecordingsCommand) -> Result<()> {
    let export = match &command {
        RecordingsCommand::Export { id, .. } => Some(id.clone()),
        _ => None,
    };
    let Some(requested) = export else {
        let store = open(dir).await?;
        let mut out = std::io::stdout();
        return finished(
            vestibule_recording::cli::run_recordings(&store, command, &mut out).await?,
        );
    };
    let mut found = None;
    let result = async {
        let store = open(dir).await?;
        let info = store.find(&requested).await?;
        found = Some(info.clone());
        refuse_changed(&store, &info).await?;
        let mut out = std::io::stdout();
        finished(vestibule_recording::cli::run_recordings(&store, command, &mut out).await?)
    }
    .await;
    audit(dir, "export", &requested, found.as_ref(), &result).await;
    result
}

pub async fn play(dir: &DataDir, args: PlayArgs) -> Result<()> {
    let mut found = None;
    let result = async {
        let store = open(dir).await?;
        let info = store.find(&args.id).await?;
        found = Some(info.clone());
        refuse_changed(&store, &info).await?;
        let mut out = std::io::stdout();
        finished(vestibule_recording::cli::run_play(&store, &args, &mut out).await?)
    }
    .await;
    audit(dir, "play", &args.id, found.as_ref(), &result).await;
    result
}

pub async fn watch(dir: &DataDir, args: WatchArgs) -> Result<()> {
    let mut found = None;
    let result = async {
        let store = open(dir).await?;
        // A recording being watched is still growing: it has no hash to check yet.
        found = Some(store.find(&args.id).await?);
        let mut out = std::io::stdout();
        finished(vestibule_recording::cli::run_watch(&store, &args, &mut out).await?)
    }
    .await;
    audit(dir, "watch", &args.id, found.as_ref(), &result).await;
    result
}

/// A finished recording whose content no longer matches the hash taken
/// when it was stored is evidence that was changed: it is not replayed as if
/// it were the session, and the retrieval counts as failed.
async fn refuse_changed(store: &RecordingStore, info: &RecordingInfo) -> Result<()> {
    for report in store.verify(Some(&info.id)).await? {
        match report.outcome {
            VerifyOutcome::Mismatch { expected, actual } => bail!(
                "recording {} changed since it was stored ({actual}, recorded {expected}); \
                 not replayed (`vestibule recordings verify`)",
                info.id
            ),
            VerifyOutcome::Missing { reason } => {
                bail!("recording {} cannot be read: {reason}", info.id)
            }
            VerifyOutcome::Ok | VerifyOutcome::Unfinished => {}
        }
    }
    Ok(())
}

/// Queue the retrieval for the audit trail; the gateway counts it in
/// `vestibule_replay_retrievals_total` when it moves it into the chain.
async fn audit(
    dir: &DataDir,
    operation: &str,
    requested: &str,
    found: Option<&RecordingInfo>,
    result: &Result<()>,
) {
    let store = match crate::admin::store(dir).await {
        Ok(store) => store,
        Err(error) => {
            eprintln!("vestibule: warning: cannot queue the audit record: {error:#}");
            return;
        }
    };
    let outcome = result.as_ref().map(|_| ()).map_err(|e| format!("{e:#}"));
    let found = found.map(|info| (info.id.as_str(), info.session_id.as_str()));
    crate::outbox::record_replay(&store, operation, requested, found, outcome).await;
}
