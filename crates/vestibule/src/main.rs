//! `vestibule`: the single binary. `init` and `serve` run the gateway; the other
//! commands administer it, working on the same data dir while it runs.
//!
//! Owns: the command line, the data dir layout and configuration file, loading
//! keys from disk, wiring the crates together, reporting errors with context.
//! Must not touch: SSH protocol details (vestibule-gateway), SQL (vestibule-store),
//! authorization rules (vestibule-authz).

mod access;
mod admin;
mod audit;
mod ca;
mod changes;
mod cli;
mod config;
mod datadir;
mod gauges;
mod identity;
mod login;
mod outbox;
mod policy;
mod recordings;
mod serve;
mod sso;
mod tls;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use datadir::DataDir;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Both ring and aws-lc-rs are in the dependency graph; rustls needs to be told.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("vestibule: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("vestibule: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let dir = DataDir::new(cli.data_dir.unwrap_or_else(datadir::default_dir));
    let audited = outbox::action_of(&cli.command);
    let store = match audited {
        Some(_) => admin::store(&dir).await.ok(),
        None => None,
    };
    let snapshots = match (&store, changes::object_of(&cli.command)) {
        (Some(store), Some(object)) => Some(changes::Snapshots::before(&dir, store, object).await),
        _ => None,
    };
    let result = dispatch(&dir, cli.command).await;
    if let Some(action) = audited
        && let Some(store) = store
    {
        let change = match snapshots {
            Some(snapshots) => Some(snapshots.after(&dir, &store).await),
            None => None,
        };
        let outcome = result.as_ref().map(|_| ()).map_err(|e| format!("{e:#}"));
        outbox::record(&store, action, change, outcome).await;
    }
    result
}

async fn dispatch(dir: &DataDir, command: Command) -> anyhow::Result<()> {
    let dir = dir.clone();
    match command {
        Command::Init => {
            dir.init().await?;
            println!("Initialised a Vestibule data dir at {}", dir.root.display());
            println!(
                "Start the gateway with: vestibule serve --data-dir {}",
                dir.root.display()
            );
            Ok(())
        }
        Command::Serve(args) => serve::run(dir, args).await,
        Command::GatewayKey => admin::gateway_key(&dir),
        Command::User(command) => admin::user(&dir, command).await,
        Command::Breakglass(command) => identity::breakglass(&dir, command).await,
        Command::Target(command) => admin::target(&dir, command).await,
        Command::Role(command) => admin::role(&dir, command).await,
        Command::Ca(command) => ca::run(&dir, command).await,
        Command::SshConfig(args) => ca::ssh_config(&dir, args).await,
        Command::Login(args) => login::run(args).await,
        Command::Policy(command) => policy::run(&dir, command).await,
        Command::Lock(command) => access::lock(&dir, command).await,
        Command::Sessions(cli::SessionsCommand::Watch(args)) => recordings::watch(&dir, args).await,
        Command::Sessions(command) => access::sessions(&dir, command).await,
        Command::Recordings(command) => recordings::recordings(&dir, command).await,
        Command::Play(args) => recordings::play(&dir, args).await,
        Command::Request(command) => access::request(&dir, command).await,
        Command::Audit(command) => {
            if audit::run(&dir, command).await? {
                Ok(())
            } else {
                anyhow::bail!("the audit trail has problems (listed above)")
            }
        }
    }
}
