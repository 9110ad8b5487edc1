//! Gauges that are read rather than counted: audit writer and sink backlogs,
//! recordings waiting for upload, and readiness. Refreshed every few seconds.

use std::time::Duration;

use vestibule_audit::AuditHandle;
use vestibule_gateway::EventSink;
use vestibule_metrics::Metrics;
use vestibule_recording::RecordingStore;

use crate::audit::SinkStatsSource;

const EVERY: Duration = Duration::from_secs(5);

pub async fn refresh(
    metrics: Metrics,
    audit: AuditHandle,
    sinks: SinkStatsSource,
    recordings: Option<RecordingStore>,
    events: EventSink,
    limiter: std::sync::Arc<vestibule_identity::limiter::Limiter>,
) {
    let mut tick = tokio::time::interval(EVERY);
    let mut dropped_seen = 0;
    let mut events_dropped_seen = 0;
    let mut lockouts_seen = 0;
    loop {
        tick.tick().await;
        let stats = audit.stats();
        metrics.set_audit_events_written_total(stats.events_written);
        if stats.dropped > dropped_seen {
            metrics.audit_events_dropped(stats.dropped - dropped_seen);
            dropped_seen = stats.dropped;
        }
        metrics.set_ready("audit", stats.failed == 0);
        let lockouts = limiter.lockouts();
        for _ in lockouts_seen..lockouts {
            metrics.lockout();
        }
        lockouts_seen = lockouts;
        let lost = events.dropped();
        if lost > events_dropped_seen {
            metrics.events_dropped(lost - events_dropped_seen);
            events_dropped_seen = lost;
        }
        for sink in sinks.stats() {
            metrics.set_audit_sink_backlog(&sink.name, sink.backlog);
        }
        if let Some(store) = &recordings {
            let ready = store.check_storage().await.is_ok();
            metrics.set_ready("recording", ready);
            // Kept in memory by the store: reading every recording's metadata
            // each round cost an idle gateway CPU in proportion to how many it
            // had ever recorded.
            metrics.set_recording_backlog_bytes(store.upload_backlog_bytes());
        }
    }
}
