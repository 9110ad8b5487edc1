//! `vestibule serve`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;
use vestibule_audit::{Action, AuditEvent, AuditHandle, Level, Outcome};
use vestibule_authz::{
    Authorizer, CedarEngine, PolicyDir, PolicyError, ReloadObserver, ReloadReport, ReloadTrigger,
};
use vestibule_ca::{CaKind, LiveKeyring};
use vestibule_gateway::{EventSink, Gateway, GatewaySettings, events};

use crate::cli::ServeArgs;
use crate::datadir::DataDir;

/// Bound on events waiting for their consumer; past it they are counted as dropped.
const EVENT_BUFFER: usize = 4096;

/// Every session holds several descriptors (the person's socket, the
/// target's, its recording, two while a burst is written), so the usual soft
/// limit of 1,024 would stop the gateway at a couple of hundred sessions.
/// Raised to the hard limit, which the administrator sets (`LimitNOFILE=`).
fn raise_open_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return;
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::info!(
            from = ?limit.current,
            to = ?limit.maximum,
            "raised the open-file limit to its hard limit"
        ),
        Err(error) => tracing::warn!(
            %error,
            soft = ?limit.current,
            "cannot raise the open-file limit; sessions may fail past it"
        ),
    }
}

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
    raise_open_file_limit();

    // Checked before anything starts, so a bad token file stops nothing half-way.
    let metrics_token = metrics_token(&dir, &config)?;
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
    let _maintenance = recordings.as_ref().map(|r| {
        let audit = audit.handle.clone();
        AbortOnDrop(r.spawn_maintenance(move |days, deleted| {
            audit.record(
                AuditEvent::new(Action::RecordingDelete, Outcome::Success)
                    .user("gateway:retention")
                    .reason(format!("older than retention_days = {days}"))
                    .detail("recording_ids", deleted),
            );
        }))
    });
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
    tokio::spawn(crate::outbox::drain(
        store.clone(),
        audit.handle.clone(),
        metrics.clone(),
    ));
    audit.handle.record(configuration_read(&dir));
    policies.observe_reloads(reload_observer(
        audit.handle.clone(),
        metrics.clone(),
        dir.policies_dir(),
    ));
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
        metrics_token,
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
        front_ciphers: config.front_ciphers()?,
        session_threads: config.ssh.session_threads,
    };
    tracing::info!(
        ciphers = %settings.front_ciphers.names().collect::<Vec<_>>().join(","),
        "ciphers offered to clients"
    );
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
    metrics_token: Option<vestibule_metrics::BearerToken>,
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
        enroll_at_first_login: identity.enroll_at_first_login,
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
    let router = router.merge(vestibule_metrics::metrics_router_with_token(
        metrics,
        metrics_token,
    ));
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
/// `vestibule.toml` is read at start only.
async fn reload_on_hangup(engine: Arc<CedarEngine>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hangup.recv().await.is_some() {
        // The engine reports the outcome to its observer; a refused set
        // leaves the old one in force.
        let _ = engine.reload_because(ReloadTrigger::Signal);
    }
}

/// Each attempt to load the policy files becomes a `config.reload` audit
/// event and a count in `vestibule_config_reloads_total`. The engine calls
/// this from a decision's thread, so it only queues (`record` never waits).
fn reload_observer(
    audit: AuditHandle,
    metrics: vestibule_metrics::Metrics,
    dir: std::path::PathBuf,
) -> ReloadObserver {
    Arc::new(move |report: &ReloadReport| {
        metrics.config_reload(report.succeeded());
        audit.record(reload_event(report, &dir));
    })
}

fn reload_event(report: &ReloadReport, dir: &std::path::Path) -> AuditEvent {
    let info = &report.in_force;
    let outcome = if report.succeeded() {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    let mut event = AuditEvent::new(Action::ConfigReload, outcome)
        .user("vestibule")
        .detail("what", "policies")
        .detail("path", dir.display().to_string())
        .detail("trigger", report.trigger.as_str())
        .detail("policies", info.policies)
        .detail("files", info.files)
        .detail("sha256", info.sha256.as_str());
    if let Some(failure) = &report.failure {
        let problems: Vec<serde_json::Value> = failure
            .problems
            .iter()
            .map(|p| {
                serde_json::json!({
                    "file": p.file.display().to_string(),
                    "line": p.line,
                    "column": p.column,
                    "message": p.message,
                    "at": p.to_string(),
                })
            })
            .collect();
        event = event
            .level(Level::Warning)
            .reason(format!(
                "policy files refused; the previous set stays in force: {}",
                failure.message
            ))
            .detail("previous_kept", true)
            .detail("problems", problems);
    }
    event
}

/// `vestibule.toml` as `serve` read it at start (it is not re-read while the
/// gateway runs), so the trail shows when the configuration changed between
/// starts.
fn configuration_read(dir: &DataDir) -> AuditEvent {
    use sha2::{Digest, Sha256};
    let path = dir.config_path();
    let event = AuditEvent::new(Action::ConfigReload, Outcome::Success)
        .user("vestibule")
        .detail("what", "configuration")
        .detail("path", path.display().to_string())
        .detail("trigger", ReloadTrigger::Startup.as_str());
    match std::fs::read(&path) {
        Ok(bytes) => {
            let digest: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            event.detail("sha256", digest)
        }
        // Already parsed moments ago; a failure now changes nothing that runs.
        Err(error) => event.detail("unreadable", error.to_string()),
    }
}

/// `[metrics] bearer_token_file`, read once at start. The file must be
/// private like a key: anyone who reads it can scrape the metrics.
fn metrics_token(
    dir: &DataDir,
    config: &crate::config::Config,
) -> Result<Option<vestibule_metrics::BearerToken>> {
    let Some(file) = &config.metrics.bearer_token_file else {
        return Ok(None);
    };
    let path = dir.resolve(file);
    crate::datadir::require_private(&path)?;
    let text =
        zeroize::Zeroizing::new(std::fs::read_to_string(&path).with_context(|| {
            format!("cannot read metrics.bearer_token_file {}", path.display())
        })?);
    let token = vestibule_metrics::BearerToken::new(&text)
        .with_context(|| format!("metrics.bearer_token_file {} is empty", path.display()))?;
    println!("/metrics requires the bearer token in {}", path.display());
    Ok(Some(token))
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
