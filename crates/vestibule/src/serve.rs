//! `vestibule serve`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;
use vestibule_authz::{Authorizer, CedarEngine, PolicyDir, PolicyError};
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
    dir.ensure_tls(&config)?;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.filter))
        .context("invalid log.filter")?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    dir.ensure_policies()?;
    let policies = Arc::new(open_policies(&dir)?);
    tokio::spawn(reload_on_hangup(policies.clone()));
    let store = dir.open_store(&config).await?;
    let audit = crate::audit::start(&dir, &config, &store).await?;
    let recordings = if config.recording.enabled {
        let recordings = crate::recordings::open(&dir).await?;
        if let Err(error) = recordings.check_storage().await {
            // Sessions are refused until it works again; the gateway still starts.
            eprintln!(
                "vestibule: warning: {error} ({}); sessions will be refused until it is fixed",
                error.detail().unwrap_or("no detail")
            );
        }
        Some(recordings)
    } else {
        eprintln!("vestibule: warning: recording.enabled = false: sessions are NOT recorded");
        None
    };
    let _maintenance = recordings
        .as_ref()
        .map(|r| AbortOnDrop(r.spawn_maintenance()));
    let (events, receiver) = EventSink::bounded(EVENT_BUFFER);
    let events = events.with_audit(audit.handle.clone());
    let metrics = vestibule_metrics::Metrics::new(env!("CARGO_PKG_VERSION"))
        .context("cannot set up the metrics registry")?;
    tokio::spawn(events::consume(
        receiver,
        Some(audit.handle.clone()),
        Some(metrics.clone()),
    ));
    let identity = config.identity.settings();
    tokio::spawn(crate::gauges::refresh(
        metrics.clone(),
        audit.handle.clone(),
        audit.sink_stats(),
        recordings.clone(),
        events.clone(),
        identity.limiter.clone(),
    ));
    tokio::spawn(crate::outbox::drain(store.clone(), audit.handle.clone()));
    let user_ca = Arc::new(LiveKeyring::open(&dir.ca_root(), CaKind::User)?);
    let sso = config
        .sso
        .as_ref()
        .map(|sso| crate::sso::Sso::open(&dir, sso))
        .transpose()?;
    let api = api_server(
        &dir,
        &config,
        &args,
        store.clone(),
        user_ca.clone(),
        sso.as_ref(),
        metrics.clone(),
        &identity,
        audit.handle.clone(),
    )?;
    let settings = GatewaySettings {
        host_key: dir.load_key(&config.ssh.host_key)?,
        client_key: dir.load_key(&config.ssh.client_key)?,
        target_connect_timeout: config.target_connect_timeout(),
        user_ca: user_ca.clone(),
        host_ca: LiveKeyring::open(&dir.ca_root(), CaKind::Host)?,
        certificates: config.certificate_settings(),
        store,
        authorizer: Authorizer::new(Box::new(policies)),
        events,
        access_requests: config.access_requests.settings(),
        identity: identity.clone(),
        recordings,
        sso: sso.as_ref().map(|s| s.ssh_approvals()),
        target_host_cas: config
            .ssh
            .target_host_cas
            .as_deref()
            .map(|path| dir.resolve(path)),
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
    metrics.set_ready("ssh", true);
    println!(
        "Connect with: ssh -p {port} PERSON:TARGET@HOST, or ssh -J PERSON@HOST:{port} LOGIN@TARGET",
        port = bound.port()
    );
    println!("Data dir: {}", dir.root.display());
    let gateway = Gateway::new(settings);
    let result = tokio::select! {
        served = gateway.serve(listener) => served.context("the SSH gateway stopped"),
        served = api => served.context("the HTTPS API stopped"),
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(())
        }
    };
    audit.shutdown().await;
    result
}

/// Bind the HTTPS API and return the future that serves it.
#[allow(
    clippy::too_many_arguments,
    reason = "each part of the API arrives from serve's start-up"
)]
fn api_server(
    dir: &DataDir,
    config: &crate::config::Config,
    args: &ServeArgs,
    store: vestibule_store::Store,
    user_ca: Arc<LiveKeyring>,
    sso: Option<&crate::sso::Sso>,
    metrics: vestibule_metrics::Metrics,
    identity: &vestibule_gateway::IdentitySettings,
    audit: vestibule_audit::AuditHandle,
) -> Result<impl std::future::Future<Output = std::io::Result<()>> + use<>> {
    let (cert, key) = dir.tls_paths(config);
    crate::datadir::require_private(&key)?;
    let (tls, fingerprint) = crate::tls::server_config(&cert, &key)?;
    let address = args.http_listen.unwrap_or(config.http.listen);
    let listener = std::net::TcpListener::bind(address)
        .with_context(|| format!("cannot listen on {address}"))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    println!("Vestibule HTTPS listening on {bound} (TLS certificate {fingerprint})");
    let default_login_ttl = Duration::from_secs(config.ca.default_login_ttl_secs);
    let max_login_ttl = Duration::from_secs(config.ca.max_login_ttl_secs);
    let mut router = vestibule_api::router(vestibule_api::ApiSettings {
        store: store.clone(),
        user_ca: user_ca.clone(),
        default_login_ttl,
        max_login_ttl,
        limiter: identity.limiter.clone(),
        require_mfa: identity.require_mfa,
        audit: Some(audit.clone()),
    });
    if let Some(sso) = sso {
        router = router.merge(vestibule_api::sso_router(vestibule_api::SsoApiSettings {
            store,
            user_ca,
            client: sso.client.clone(),
            approvals: sso.approvals.clone(),
            base_url: sso.base_url.clone(),
            approval_timeout: sso.approval_timeout,
            default_login_ttl,
            max_login_ttl,
            audit: Some(audit.clone()),
        }));
        println!(
            "Single sign-on: {} (callback {}/auth/callback)",
            sso.client.settings().issuer,
            sso.base_url
        );
    }
    // Prometheus scrapes /metrics and /readyz on the same listener.
    let router = router.merge(vestibule_metrics::metrics_router(metrics));
    Ok(vestibule_api::serve_tls(listener, tls, router))
}

/// The Cedar engine over the data dir's policies. A set with problems stops the
/// start, with each problem's file, line and column.
fn open_policies(dir: &DataDir) -> Result<CedarEngine> {
    let policies = PolicyDir::new(dir.policies_dir());
    match CedarEngine::open(policies) {
        Ok(engine) => Ok(engine),
        Err(PolicyError::Invalid { problems }) => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            anyhow::bail!(
                "{} problem(s) in the policy files under {}; fix them (`vestibule policy check`) and start again",
                problems.len(),
                dir.policies_dir().display()
            )
        }
        Err(other) => Err(other.into()),
    }
}

/// SIGHUP reloads the policy files (they are also reloaded when they change).
async fn reload_on_hangup(engine: Arc<CedarEngine>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hangup.recv().await.is_some() {
        // The engine logs the outcome; a refused set leaves the old one in force.
        let _ = engine.reload();
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
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
