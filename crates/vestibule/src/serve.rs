//! `vestibule serve`.

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;
use vestibule_authz::Authorizer;
use vestibule_ca::{CaKind, LiveKeyring};
use vestibule_gateway::{EventSink, Gateway, GatewaySettings, events};

use crate::cli::ServeArgs;
use crate::datadir::DataDir;

/// Bound on events waiting for their consumer; past it they are counted as dropped.
const EVENT_BUFFER: usize = 4096;

pub async fn run(dir: DataDir, args: ServeArgs) -> Result<()> {
    if !dir.is_initialised() {
        dir.init().await?;
        println!(
            "Initialised a new Vestibule data dir at {}",
            dir.root.display()
        );
    }
    let config = dir.load_config()?;
    dir.ensure_cas()?;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.filter))
        .context("invalid log.filter")?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let store = dir.open_store(&config).await?;
    let (events, receiver) = EventSink::bounded(EVENT_BUFFER);
    tokio::spawn(events::log_events(receiver));
    let settings = GatewaySettings {
        host_key: dir.load_key(&config.ssh.host_key)?,
        client_key: dir.load_key(&config.ssh.client_key)?,
        target_connect_timeout: config.target_connect_timeout(),
        user_ca: LiveKeyring::open(&dir.ca_root(), CaKind::User)?,
        host_ca: LiveKeyring::open(&dir.ca_root(), CaKind::Host)?,
        certificates: config.certificate_settings(),
        store,
        authorizer: Authorizer::roles(),
        events,
    };
    let host_fingerprint = settings
        .host_key
        .public_key()
        .fingerprint(Default::default());
    let address = args.ssh_listen.unwrap_or(config.ssh.listen);
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let bound = listener.local_addr()?;
    println!("Vestibule SSH listening on {bound} (host key {host_fingerprint})");
    println!(
        "Connect with: ssh -p {port} PERSON:TARGET@HOST, or ssh -J PERSON@HOST:{port} LOGIN@TARGET",
        port = bound.port()
    );
    println!("Data dir: {}", dir.root.display());
    tracing::info!(listen = %config.http.listen, "the HTTP listener is reserved for the HTTP API and not started yet");
    let gateway = Gateway::new(settings);
    tokio::select! {
        served = gateway.serve(listener) => served.context("the SSH gateway stopped"),
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
