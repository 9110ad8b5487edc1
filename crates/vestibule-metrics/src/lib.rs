//! The gateway's Prometheus metrics.
//!
//! Owns: the metric registry and every `vestibule_*` metric's name, type,
//! labels, help text and histogram buckets ([`Metrics`]); the text exposition
//! (format 0.0.4); readiness as the components report it; and the axum routes
//! `GET /metrics` and `GET /readyz` ([`metrics_router`]). The alert rules and
//! dashboards under `deploy/` and `docs/metrics.md` are written against the
//! names defined here, and this crate's tests keep them in step.
//!
//! Must not touch: sessions, the audit trail, recordings, the database, the
//! network or files. It is fed values by the gateway's event consumer and by
//! the components that own them; recording a value is a few atomic operations
//! (at most a short lock on one metric's label map), never I/O, so it can be
//! called from any task. TLS and the HTTP listener belong to `vestibule-api`
//! and the binary, which mount the router.

mod labels;
mod router;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::core::{Collector, MetricVec, MetricVecBuilder};
use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use labels::OpenLabel;
pub use router::{
    BearerToken, CONTENT_TYPE, ComponentReadiness, Readiness, metrics_router,
    metrics_router_with_token,
};

/// Buckets of `vestibule_session_setup_seconds`: 5 ms to 10 s.
pub const SESSION_SETUP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of `vestibule_session_duration_seconds`: 1 s to 24 h.
pub const SESSION_DURATION_BUCKETS: &[f64] = &[
    1.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0,
];
/// Buckets of `vestibule_time_to_grant_seconds`: 1 s to 24 h.
pub const TIME_TO_GRANT_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0,
    86400.0,
];

/// What can go wrong here.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A metric could not be defined or registered (a programming error: a
    /// bad name or a duplicate).
    #[error("cannot define metric: {0}")]
    Define(#[source] prometheus::Error),
    /// The registry could not be written out in the text format.
    #[error("cannot encode metrics: {0}")]
    Encode(#[source] prometheus::Error),
}

/// The gateway's metrics. Cloning is cheap (one `Arc`); every method takes
/// `&self` and is safe to call from any thread.
///
/// Label values passed as `&str` are normalised: the documented fixed sets
/// (protocols, results, kinds) fold case and `-`, and anything else becomes
/// `other`; open labels (auth method, failure reason, sink, component) are
/// cleaned to `[a-z0-9_.:-]` and bounded in number, so that no caller can
/// create series without limit.
///
/// ```
/// let metrics = vestibule_metrics::Metrics::new("0.1.0")?;
/// metrics.auth_attempt("publickey", "success");
/// metrics.session_started("shell");
/// assert!(metrics.render().contains("vestibule_sessions_active{protocol=\"shell\"} 1"));
/// # Ok::<(), vestibule_metrics::MetricsError>(())
/// ```
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    auth_attempts: IntCounterVec,
    sessions_active: IntGaugeVec,
    sessions_total: IntCounterVec,
    session_duration: HistogramVec,
    session_setup: Histogram,
    forwarded_bytes: IntCounterVec,
    policy_decisions: IntCounterVec,
    certificates_issued: IntCounterVec,
    certificate_signing_failures: IntCounterVec,
    certificates: IntGaugeVec,
    recordings: IntCounterVec,
    recording_failures: IntCounterVec,
    recording_backlog_bytes: IntGauge,
    audit_sink_backlog: IntGaugeVec,
    audit_events_written: IntCounter,
    audit_events_dropped: IntCounter,
    time_to_grant: Histogram,
    replay_retrievals: IntCounterVec,
    config_reloads: IntCounterVec,
    lockouts: IntCounter,
    breakglass_uses: IntCounter,
    events_dropped: IntCounter,
    component_ready: IntGaugeVec,
    readiness: Mutex<BTreeMap<String, bool>>,
    methods: OpenLabel,
    reasons: OpenLabel,
    sinks: OpenLabel,
    components: OpenLabel,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn register<C: Collector + Clone + 'static>(
    registry: &Registry,
    collector: C,
) -> Result<C, MetricsError> {
    registry
        .register(Box::new(collector.clone()))
        .map_err(MetricsError::Define)?;
    Ok(collector)
}

fn counter(registry: &Registry, name: &str, help: &str) -> Result<IntCounter, MetricsError> {
    register(
        registry,
        IntCounter::new(name, help).map_err(MetricsError::Define)?,
    )
}

fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, MetricsError> {
    register(
        registry,
        IntCounterVec::new(Opts::new(name, help), labels).map_err(MetricsError::Define)?,
    )
}

fn gauge_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, MetricsError> {
    register(
        registry,
        IntGaugeVec::new(Opts::new(name, help), labels).map_err(MetricsError::Define)?,
    )
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
) -> Result<Histogram, MetricsError> {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    register(
        registry,
        Histogram::with_opts(opts).map_err(MetricsError::Define)?,
    )
}

/// The series of `vec` for `values`; `None` (logged) only if the number of
/// values is wrong, which the callers below rule out.
fn series<T: MetricVecBuilder>(vec: &MetricVec<T>, values: &[&str]) -> Option<T::M> {
    match vec.get_metric_with_label_values(values) {
        Ok(series) => Some(series),
        Err(error) => {
            tracing::warn!(%error, ?values, "metrics: label values refused");
            None
        }
    }
}

/// A count as a gauge value, saturating.
fn gauge_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Metrics {
    /// A fresh registry with every metric defined. `version` is the binary's
    /// version, exported as `vestibule_build_info{version}`; the moment of the
    /// call is exported as `process_start_time_seconds`, so make this at
    /// start-up.
    pub fn new(version: &str) -> Result<Self, MetricsError> {
        let r = Registry::new();

        let build_info = gauge_vec(
            &r,
            "vestibule_build_info",
            "Always 1; the labels say which build of Vestibule is running.",
            &["version"],
        )?;
        let start_time = register(
            &r,
            Gauge::new(
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch, in seconds.",
            )
            .map_err(MetricsError::Define)?,
        )?;

        let inner = Inner {
            auth_attempts: counter_vec(
                &r,
                "vestibule_auth_attempts_total",
                "Authentication attempts by method and result (success, failure, locked_out).",
                &["method", "result"],
            )?,
            sessions_active: gauge_vec(
                &r,
                "vestibule_sessions_active",
                "Sessions in progress, by protocol.",
                &["protocol"],
            )?,
            sessions_total: counter_vec(
                &r,
                "vestibule_sessions_total",
                "Sessions started, by protocol.",
                &["protocol"],
            )?,
            session_duration: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "vestibule_session_duration_seconds",
                        "Duration of ended sessions, by protocol, in seconds.",
                    )
                    .buckets(SESSION_DURATION_BUCKETS.to_vec()),
                    &["protocol"],
                )
                .map_err(MetricsError::Define)?,
            )?,
            session_setup: histogram(
                &r,
                "vestibule_session_setup_seconds",
                "Time from a session request to bytes flowing to the target, in seconds.",
                SESSION_SETUP_BUCKETS,
            )?,
            forwarded_bytes: counter_vec(
                &r,
                "vestibule_forwarded_bytes_total",
                "Bytes forwarded by ended sessions, by protocol and direction (to_target, from_target).",
                &["protocol", "direction"],
            )?,
            policy_decisions: counter_vec(
                &r,
                "vestibule_policy_decisions_total",
                "Authorization decisions by result (allow, deny).",
                &["result"],
            )?,
            certificates_issued: counter_vec(
                &r,
                "vestibule_certificates_issued_total",
                "SSH certificates issued, by kind (user, host).",
                &["kind"],
            )?,
            certificate_signing_failures: counter_vec(
                &r,
                "vestibule_certificate_signing_failures_total",
                "SSH certificates that could not be signed, by kind (user, host).",
                &["kind"],
            )?,
            certificates: gauge_vec(
                &r,
                "vestibule_certificates",
                "Issued SSH certificates known to the gateway, by kind and state (valid, expired).",
                &["kind", "state"],
            )?,
            recordings: counter_vec(
                &r,
                "vestibule_recordings_total",
                "Finished session recordings by state (complete, incomplete).",
                &["state"],
            )?,
            recording_failures: counter_vec(
                &r,
                "vestibule_recording_failures_total",
                "Recording failures (a recording that could not start, write or be stored), by reason.",
                &["reason"],
            )?,
            recording_backlog_bytes: register(
                &r,
                IntGauge::new(
                    "vestibule_recording_backlog_bytes",
                    "Recording bytes written locally but not yet in their final storage.",
                )
                .map_err(MetricsError::Define)?,
            )?,
            audit_sink_backlog: gauge_vec(
                &r,
                "vestibule_audit_sink_backlog_events",
                "Audit events in the trail that a SIEM sink has not delivered yet, by sink.",
                &["sink"],
            )?,
            audit_events_written: counter(
                &r,
                "vestibule_audit_events_written_total",
                "Audit events made durable in the hash-chained trail.",
            )?,
            audit_events_dropped: counter(
                &r,
                "vestibule_audit_events_dropped_total",
                "Audit events that could not be written to the trail.",
            )?,
            time_to_grant: histogram(
                &r,
                "vestibule_time_to_grant_seconds",
                "Time from an access request to the first session it allowed, in seconds.",
                TIME_TO_GRANT_BUCKETS,
            )?,
            replay_retrievals: counter_vec(
                &r,
                "vestibule_replay_retrievals_total",
                "Recording retrievals for replay or export, by result (success, failure).",
                &["result"],
            )?,
            config_reloads: counter_vec(
                &r,
                "vestibule_config_reloads_total",
                "Attempts to load the policy files (at start, on change, on SIGHUP), by result (success, failure).",
                &["result"],
            )?,
            lockouts: counter(
                &r,
                "vestibule_lockouts_total",
                "Lockouts of people or keys, by the failed-login limiter or an administrator.",
            )?,
            breakglass_uses: counter(
                &r,
                "vestibule_breakglass_uses_total",
                "Uses of break-glass access.",
            )?,
            events_dropped: counter(
                &r,
                "vestibule_events_dropped_total",
                "Gateway events dropped because an observer fell behind.",
            )?,
            component_ready: gauge_vec(
                &r,
                "vestibule_component_ready",
                "1 when a component reports itself ready, 0 when not, by component.",
                &["component"],
            )?,
            readiness: Mutex::new(BTreeMap::new()),
            methods: OpenLabel::new(16),
            reasons: OpenLabel::new(16),
            sinks: OpenLabel::new(64),
            components: OpenLabel::new(32),
            registry: r,
        };

        if let Some(info) = series(&build_info, &[version]) {
            info.set(1);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        start_time.set(now.as_secs_f64());

        // Every series whose label values are known exists from the start, at
        // zero, so that `rate()` and `increase()` see the first event.
        for method in labels::AUTH_METHODS {
            let method = inner.methods.value(method);
            for result in labels::AUTH_RESULTS {
                series(&inner.auth_attempts, &[&method, result]);
            }
        }
        for protocol in labels::PROTOCOLS {
            series(&inner.sessions_active, &[protocol]);
            series(&inner.sessions_total, &[protocol]);
            series(&inner.session_duration, &[protocol]);
            for direction in labels::DIRECTIONS {
                series(&inner.forwarded_bytes, &[protocol, direction]);
            }
        }
        for result in labels::POLICY_RESULTS {
            series(&inner.policy_decisions, &[result]);
        }
        for kind in labels::CERT_KINDS {
            series(&inner.certificates_issued, &[kind]);
            series(&inner.certificate_signing_failures, &[kind]);
        }
        for state in labels::RECORDING_STATES {
            series(&inner.recordings, &[state]);
        }
        for result in labels::REPLAY_RESULTS {
            series(&inner.replay_retrievals, &[result]);
        }
        for result in labels::RELOAD_RESULTS {
            series(&inner.config_reloads, &[result]);
        }

        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// One authentication attempt. `method`: `publickey`, `certificate`,
    /// `password`, ... (open, bounded); `result`: `success`, `failure` or
    /// `locked_out` (a refusal because the person or key is locked).
    pub fn auth_attempt(&self, method: &str, result: &str) {
        let method = self.inner.methods.value(method);
        let result = labels::pick(result, labels::AUTH_RESULTS);
        if let Some(c) = series(&self.inner.auth_attempts, &[&method, result]) {
            c.inc();
        }
    }

    /// A session began. `protocol`: `shell`, `exec`, `sftp`, `scp`, `rsync`,
    /// `port_forward`, `jump`; the gateway's own kinds (`port-forward: h:p`)
    /// are understood too. Pair with [`Metrics::session_ended`].
    pub fn session_started(&self, protocol: &str) {
        let protocol = labels::protocol(protocol);
        if let Some(g) = series(&self.inner.sessions_active, &[protocol]) {
            g.inc();
        }
        if let Some(c) = series(&self.inner.sessions_total, &[protocol]) {
            c.inc();
        }
    }

    /// A session ended after `duration`, having forwarded these bytes.
    pub fn session_ended(
        &self,
        protocol: &str,
        bytes_to_target: u64,
        bytes_from_target: u64,
        duration: Duration,
    ) {
        let protocol = labels::protocol(protocol);
        if let Some(g) = series(&self.inner.sessions_active, &[protocol]) {
            // Never below zero, even if an end arrives without its start.
            if g.get() > 0 {
                g.dec();
            }
        }
        if let Some(h) = series(&self.inner.session_duration, &[protocol]) {
            h.observe(duration.as_secs_f64());
        }
        if let Some(c) = series(&self.inner.forwarded_bytes, &[protocol, "to_target"]) {
            c.inc_by(bytes_to_target);
        }
        if let Some(c) = series(&self.inner.forwarded_bytes, &[protocol, "from_target"]) {
            c.inc_by(bytes_from_target);
        }
    }

    /// How long a session took from request to bytes flowing.
    pub fn session_setup(&self, duration: Duration) {
        self.inner.session_setup.observe(duration.as_secs_f64());
    }

    /// An authorization decision: `allow` or `deny`.
    pub fn policy_decision(&self, result: &str) {
        let result = labels::pick(result, labels::POLICY_RESULTS);
        if let Some(c) = series(&self.inner.policy_decisions, &[result]) {
            c.inc();
        }
    }

    /// A certificate was issued; `kind`: `user` or `host`.
    pub fn certificate_issued(&self, kind: &str) {
        let kind = labels::pick(kind, labels::CERT_KINDS);
        if let Some(c) = series(&self.inner.certificates_issued, &[kind]) {
            c.inc();
        }
    }

    /// A certificate could not be signed; `kind`: `user` or `host`.
    pub fn certificate_signing_failed(&self, kind: &str) {
        let kind = labels::pick(kind, labels::CERT_KINDS);
        if let Some(c) = series(&self.inner.certificate_signing_failures, &[kind]) {
            c.inc();
        }
    }

    /// How many issued certificates of `kind` are still valid and how many
    /// have expired (for the credential expiry SLI). Optional: the series
    /// appear once this is called.
    pub fn set_certificates(&self, kind: &str, valid: u64, expired: u64) {
        let kind = labels::pick(kind, labels::CERT_KINDS);
        if let Some(g) = series(&self.inner.certificates, &[kind, "valid"]) {
            g.set(gauge_value(valid));
        }
        if let Some(g) = series(&self.inner.certificates, &[kind, "expired"]) {
            g.set(gauge_value(expired));
        }
    }

    /// A recording finished; `complete` is false when it was cut short (a
    /// crash, a storage failure).
    pub fn recording_finished(&self, complete: bool) {
        let state = if complete { "complete" } else { "incomplete" };
        if let Some(c) = series(&self.inner.recordings, &[state]) {
            c.inc();
        }
    }

    /// A recording failed. `reason` should be a short class such as
    /// `start`, `write`, `storage`, `upload` (open, bounded: not an error
    /// message).
    pub fn recording_failure(&self, reason: &str) {
        let reason = self.inner.reasons.value(reason);
        if let Some(c) = series(&self.inner.recording_failures, &[&reason]) {
            c.inc();
        }
    }

    /// Bytes of recordings waiting to reach their final storage.
    pub fn set_recording_backlog_bytes(&self, bytes: u64) {
        self.inner.recording_backlog_bytes.set(gauge_value(bytes));
    }

    /// Events in the trail that `sink` has not delivered yet.
    pub fn set_audit_sink_backlog(&self, sink: &str, events: u64) {
        let sink = self.inner.sinks.value(sink);
        if let Some(g) = series(&self.inner.audit_sink_backlog, &[&sink]) {
            g.set(gauge_value(events));
        }
    }

    /// `count` more audit events were made durable.
    pub fn audit_events_written(&self, count: u64) {
        self.inner.audit_events_written.inc_by(count);
    }

    /// The audit writer's own running total of durable events; the counter
    /// moves up to it (never down), for a caller that keeps a total rather
    /// than reporting each batch. Use this or
    /// [`Metrics::audit_events_written`], not both.
    pub fn set_audit_events_written_total(&self, total: u64) {
        let counter = &self.inner.audit_events_written;
        let current = counter.get();
        if total > current {
            counter.inc_by(total - current);
        }
    }

    /// `count` audit events could not be written.
    pub fn audit_events_dropped(&self, count: u64) {
        self.inner.audit_events_dropped.inc_by(count);
    }

    /// Time from an access request to the first session its grant allowed.
    pub fn time_to_grant(&self, duration: Duration) {
        self.inner.time_to_grant.observe(duration.as_secs_f64());
    }

    /// A recording retrieval (replay, export, watch) succeeded or failed.
    pub fn replay_retrieval(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        if let Some(c) = series(&self.inner.replay_retrievals, &[result]) {
            c.inc();
        }
    }

    /// A recording could not be retrieved for replay.
    pub fn replay_failure(&self) {
        self.replay_retrieval(false);
    }

    /// A configuration load (policy files) succeeded or was refused.
    pub fn config_reload(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        if let Some(c) = series(&self.inner.config_reloads, &[result]) {
            c.inc();
        }
    }

    /// A person or key was locked out (by the failed-login limiter or an
    /// administrator). Attempts refused because of a lock are counted by
    /// [`Metrics::auth_attempt`] with `locked_out`.
    pub fn lockout(&self) {
        self.inner.lockouts.inc();
    }

    /// Break-glass access was used.
    pub fn breakglass_use(&self) {
        self.inner.breakglass_uses.inc();
    }

    /// `count` gateway events were dropped because an observer fell behind.
    pub fn events_dropped(&self, count: u64) {
        self.inner.events_dropped.inc_by(count);
    }

    /// A component (`ssh`, `api`, `audit`, `recording`, ...) says whether it
    /// is ready. `/readyz` is 200 only when every component that has reported
    /// is ready, and at least one has.
    pub fn set_ready(&self, component: &str, ready: bool) {
        let component = self.inner.components.value(component);
        if let Some(g) = series(&self.inner.component_ready, &[&component]) {
            g.set(i64::from(ready));
        }
        let mut map = match self.inner.readiness.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.insert(component, ready);
    }

    /// Whether the gateway is ready (some component reported, all ready), and
    /// each component's state, sorted by name.
    pub fn is_ready(&self) -> (bool, Vec<(String, bool)>) {
        let map = match self.inner.readiness.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        let components: Vec<(String, bool)> = map
            .iter()
            .map(|(name, ready)| (name.clone(), *ready))
            .collect();
        let ready = !components.is_empty() && components.iter().all(|(_, ready)| *ready);
        (ready, components)
    }

    /// The registry in the Prometheus text format 0.0.4.
    pub fn try_render(&self) -> Result<String, MetricsError> {
        let families = self.inner.registry.gather();
        let mut out = String::new();
        TextEncoder::new()
            .encode_utf8(&families, &mut out)
            .map_err(MetricsError::Encode)?;
        Ok(out)
    }

    /// The registry in the Prometheus text format 0.0.4; empty (and logged)
    /// in the unexpected case that it cannot be encoded.
    pub fn render(&self) -> String {
        match self.try_render() {
            Ok(text) => text,
            Err(error) => {
                tracing::error!(%error, "metrics: cannot render");
                String::new()
            }
        }
    }
}

#[cfg(test)]
mod tests;
