//! Session recordings in `serve` (the store and its maintenance) and the
//! `recordings`, `play` and `sessions watch` commands.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use vestibule_recording::RecordingStore;
use vestibule_recording::cli::{PlayArgs, RecordingsCommand, WatchArgs};

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
    let store = open(dir).await?;
    let mut out = std::io::stdout();
    finished(vestibule_recording::cli::run_recordings(&store, command, &mut out).await?)
}

pub async fn play(dir: &DataDir, args: PlayArgs) -> Result<()> {
    let store = open(dir).await?;
    let mut out = std::io::stdout();
    finished(vestibule_recording::cli::run_play(&store, &args, &mut out).await?)
}

pub async fn watch(dir: &DataDir, args: WatchArgs) -> Result<()> {
    let store = open(dir).await?;
    let mut out = std::io::stdout();
    finished(vestibule_recording::cli::run_watch(&store, &args, &mut out).await?)
}
