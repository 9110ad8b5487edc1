use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

use super::*;

fn metrics() -> Metrics {
    Metrics::new("1.2.3-test").expect("metrics")
}

/// The value of the sample line that starts with `series ` exactly.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

#[test]
fn fresh_registry_has_help_type_and_zero_series() {
    let text = metrics().render();
    for (name, kind) in [
        ("vestibule_auth_attempts_total", "counter"),
        ("vestibule_sessions_active", "gauge"),
        ("vestibule_sessions_total", "counter"),
        ("vestibule_session_duration_seconds", "histogram"),
        ("vestibule_session_setup_seconds", "histogram"),
        ("vestibule_forwarded_bytes_total", "counter"),
        ("vestibule_policy_decisions_total", "counter"),
        ("vestibule_certificates_issued_total", "counter"),
        ("vestibule_certificate_signing_failures_total", "counter"),
        ("vestibule_recordings_total", "counter"),
        ("vestibule_recording_backlog_bytes", "gauge"),
        ("vestibule_audit_events_written_total", "counter"),
        ("vestibule_audit_events_dropped_total", "counter"),
        ("vestibule_time_to_grant_seconds", "histogram"),
        ("vestibule_replay_retrievals_total", "counter"),
        ("vestibule_config_reloads_total", "counter"),
        ("vestibule_lockouts_total", "counter"),
        ("vestibule_breakglass_uses_total", "counter"),
        ("vestibule_events_dropped_total", "counter"),
        ("vestibule_build_info", "gauge"),
        ("process_start_time_seconds", "gauge"),
    ] {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no HELP for {name}"
        );
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "no TYPE {kind} for {name}"
        );
    }
    assert_eq!(
        sample(
            &text,
            r#"vestibule_auth_attempts_total{method="password",result="locked_out"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, r#"vestibule_sessions_active{protocol="jump"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, r#"vestibule_recordings_total{state="incomplete"}"#),
        Some(0.0)
    );
    assert_eq!(sample(&text, "vestibule_breakglass_uses_total"), Some(0.0));
    assert_eq!(
        sample(&text, r#"vestibule_build_info{version="1.2.3-test"}"#),
        Some(1.0)
    );
    let started = sample(&text, "process_start_time_seconds").expect("start time");
    assert!(started > 1.7e9, "start time {started}");
    // Nothing reported yet: optional series are absent, not zero.
    assert!(!text.contains("vestibule_certificates{"));
    assert!(!text.contains("vestibule_component_ready{"));
}

#[test]
fn sessions_gauge_counter_histogram_and_bytes() {
    let m = metrics();
    m.session_started("shell");
    m.session_started("shell");
    m.session_started("port-forward: web1:80");
    m.session_ended("shell", 100, 2_000, Duration::from_secs(42));
    m.session_ended("port-forward: web1:80", 5, 6, Duration::from_millis(1500));
    // An end without a start does not go below zero.
    m.session_ended("sftp", 0, 0, Duration::ZERO);
    let text = m.render();
    assert_eq!(
        sample(&text, r#"vestibule_sessions_active{protocol="shell"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"vestibule_sessions_total{protocol="shell"}"#),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"vestibule_sessions_active{protocol="port_forward"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, r#"vestibule_sessions_active{protocol="sftp"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"vestibule_forwarded_bytes_total{direction="to_target",protocol="shell"}"#
        ),
        Some(100.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"vestibule_forwarded_bytes_total{direction="from_target",protocol="shell"}"#
        ),
        Some(2000.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"vestibule_session_duration_seconds_bucket{protocol="shell",le="30"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"vestibule_session_duration_seconds_bucket{protocol="shell",le="60"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"vestibule_session_duration_seconds_sum{protocol="shell"}"#
        ),
        Some(42.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"vestibule_session_duration_seconds_count{protocol="port_forward"}"#
        ),
        Some(1.0)
    );
}

#[test]
fn histograms_are_in_seconds_with_the_documented_buckets() {
    let m = metrics();
    m.session_setup(Duration::from_millis(7));
    m.session_setup(Duration::from_millis(300));
    m.time_to_grant(Duration::from_secs(90));
    let text = m.render();
    let bucket = |name: &str, le: &str| sample(&text, &format!("{name}_bucket{{le=\"{le}\"}}"));
    let setup = "vestibule_session_setup_seconds";
    assert_eq!(bucket(setup, "0.005"), Some(0.0));
    assert_eq!(bucket(setup, "0.01"), Some(1.0));
    assert_eq!(bucket(setup, "0.25"), Some(1.0));
    assert_eq!(bucket(setup, "0.5"), Some(2.0));
    assert_eq!(bucket(setup, "10"), Some(2.0));
    assert_eq!(bucket(setup, "+Inf"), Some(2.0));
    let sum = sample(&text, "vestibule_session_setup_seconds_sum").expect("sum");
    assert!((sum - 0.307).abs() < 1e-9, "sum {sum}");
    let grant = "vestibule_time_to_grant_seconds";
    assert_eq!(bucket(grant, "1"), Some(0.0));
    assert_eq!(bucket(grant, "60"), Some(0.0));
    assert_eq!(bucket(grant, "120"), Some(1.0));
    assert_eq!(bucket(grant, "86400"), Some(1.0));
}

#[test]
fn counters_and_gauges_by_label() {
    let m = metrics();
    m.auth_attempt("publickey", "success");
    m.auth_attempt("password", "failure");
    m.auth_attempt("password", "locked-out");
    m.auth_attempt("WebAuthn", "success");
    m.policy_decision("deny");
    m.policy_decision("allow");
    m.policy_decision("allow");
    m.certificate_issued("user");
    m.certificate_signing_failed("host");
    m.set_certificates("user", 3, 40);
    m.recording_finished(true);
    m.recording_finished(false);
    m.recording_failure("storage");
    m.set_recording_backlog_bytes(4096);
    m.set_audit_sink_backlog("siem-1", 12);
    m.audit_events_written(5);
    m.set_audit_events_written_total(9);
    m.set_audit_events_written_total(2); // never goes down
    m.audit_events_dropped(1);
    m.replay_retrieval(true);
    m.replay_failure();
    m.lockout();
    m.breakglass_use();
    m.events_dropped(7);
    let text = m.render();
    for (series, value) in [
        (
            r#"vestibule_auth_attempts_total{method="publickey",result="success"}"#,
            1.0,
        ),
        (
            r#"vestibule_auth_attempts_total{method="password",result="failure"}"#,
            1.0,
        ),
        (
            r#"vestibule_auth_attempts_total{method="password",result="locked_out"}"#,
            1.0,
        ),
        (
            r#"vestibule_auth_attempts_total{method="webauthn",result="success"}"#,
            1.0,
        ),
        (r#"vestibule_policy_decisions_total{result="allow"}"#, 2.0),
        (r#"vestibule_policy_decisions_total{result="deny"}"#, 1.0),
        (r#"vestibule_certificates_issued_total{kind="user"}"#, 1.0),
        (r#"vestibule_certificates_issued_total{kind="host"}"#, 0.0),
        (
            r#"vestibule_certificate_signing_failures_total{kind="host"}"#,
            1.0,
        ),
        (r#"vestibule_certificates{kind="user",state="valid"}"#, 3.0),
        (
            r#"vestibule_certificates{kind="user",state="expired"}"#,
            40.0,
        ),
        (r#"vestibule_recordings_total{state="complete"}"#, 1.0),
        (r#"vestibule_recordings_total{state="incomplete"}"#, 1.0),
        (
            r#"vestibule_recording_failures_total{reason="storage"}"#,
            1.0,
        ),
        ("vestibule_recording_backlog_bytes", 4096.0),
        (
            r#"vestibule_audit_sink_backlog_events{sink="siem-1"}"#,
            12.0,
        ),
        ("vestibule_audit_events_written_total", 9.0),
        ("vestibule_audit_events_dropped_total", 1.0),
        (
            r#"vestibule_replay_retrievals_total{result="success"}"#,
            1.0,
        ),
        (
            r#"vestibule_replay_retrievals_total{result="failure"}"#,
            1.0,
        ),
        ("vestibule_lockouts_total", 1.0),
        ("vestibule_breakglass_uses_total", 1.0),
        ("vestibule_events_dropped_total", 7.0),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series}");
    }
}

#[test]
fn unknown_values_become_other_and_values_are_escaped_safely() {
    let m = metrics();
    m.policy_decision("maybe");
    m.session_started("x11");
    m.certificate_issued("robot");
    m.recording_failure("disk \"full\"\nat /var");
    let text = m.render();
    assert_eq!(
        sample(&text, r#"vestibule_policy_decisions_total{result="other"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"vestibule_sessions_active{protocol="other"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"vestibule_certificates_issued_total{kind="other"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"vestibule_recording_failures_total{reason="disk__full__at__var"}"#
        ),
        Some(1.0)
    );
}

#[test]
fn open_labels_are_bounded() {
    let m = metrics();
    for i in 0..100 {
        m.recording_failure(&format!("reason{i}"));
    }
    let text = m.render();
    let series = text
        .lines()
        .filter(|l| l.starts_with("vestibule_recording_failures_total{"))
        .count();
    assert_eq!(series, 17, "16 distinct reasons and other");
    assert_eq!(
        sample(
            &text,
            r#"vestibule_recording_failures_total{reason="other"}"#
        ),
        Some(84.0)
    );
}

#[test]
fn readiness_needs_a_report_and_all_components_ready() {
    let m = metrics();
    assert_eq!(m.is_ready(), (false, vec![]));
    m.set_ready("ssh", true);
    m.set_ready("audit", false);
    assert_eq!(
        m.is_ready(),
        (
            false,
            vec![("audit".to_owned(), false), ("ssh".to_owned(), true)]
        )
    );
    m.set_ready("audit", true);
    assert!(m.is_ready().0);
    let text = m.render();
    assert_eq!(
        sample(&text, r#"vestibule_component_ready{component="audit"}"#),
        Some(1.0)
    );
}

#[test]
fn clones_share_one_registry_across_threads() {
    let m = metrics();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    m.auth_attempt("publickey", "success");
                    m.session_setup(Duration::from_millis(20));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let text = m.render();
    assert_eq!(
        sample(
            &text,
            r#"vestibule_auth_attempts_total{method="publickey",result="success"}"#
        ),
        Some(4000.0)
    );
    assert_eq!(
        sample(&text, "vestibule_session_setup_seconds_count"),
        Some(4000.0)
    );
}

async fn get(router: axum::Router, path: &str) -> (StatusCode, String, String) {
    let response = router
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = to_bytes(response.into_body(), 1 << 20).await.expect("body");
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).expect("utf-8"),
    )
}

#[tokio::test]
async fn router_serves_metrics_in_the_text_format() {
    let m = metrics();
    m.breakglass_use();
    let (status, content_type, body) = get(metrics_router(m.clone()), "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    assert_eq!(sample(&body, "vestibule_breakglass_uses_total"), Some(1.0));
    let (status, _, _) = get(metrics_router(m), "/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn router_readyz_is_503_until_every_component_is_ready() {
    let m = metrics();
    let (status, content_type, body) = get(metrics_router(m.clone()), "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(content_type, "application/json");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).expect("json"),
        serde_json::json!({"ready": false, "components": []})
    );

    m.set_ready("ssh", true);
    m.set_ready("audit", false);
    let (status, _, body) = get(metrics_router(m.clone()), "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).expect("json"),
        serde_json::json!({"ready": false, "components": [
            {"name": "audit", "ready": false},
            {"name": "ssh", "ready": true},
        ]})
    );

    m.set_ready("audit", true);
    let (status, _, body) = get(metrics_router(m), "/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).expect("json"),
        serde_json::json!({"ready": true, "components": [
            {"name": "audit", "ready": true},
            {"name": "ssh", "ready": true},
        ]})
    );
}

#[tokio::test]
async fn router_merges_into_a_router_with_state() {
    #[derive(Clone)]
    struct ApiState;
    async fn hello(axum::extract::State(_): axum::extract::State<ApiState>) -> &'static str {
        "hello"
    }
    let api: axum::Router = axum::Router::new()
        .route("/hello", axum::routing::get(hello))
        .merge(metrics_router(metrics()))
        .with_state(ApiState);
    let (status, _, body) = get(api.clone(), "/hello").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
    let (status, _, _) = get(api, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn bearer_token_guards_metrics_but_not_readyz() {
    let m = metrics();
    m.set_ready("ssh", true);
    assert!(
        BearerToken::new(" \n").is_none(),
        "an empty token is refused"
    );
    let token = BearerToken::new("s3cret-token\n").expect("token");
    assert!(!format!("{token:?}").contains("s3cret"));
    let router = || metrics_router_with_token::<()>(m.clone(), Some(token.clone()));
    let with = |value: Option<&str>| {
        let mut request = Request::get("/metrics");
        if let Some(value) = value {
            request = request.header(header::AUTHORIZATION, value);
        }
        request.body(Body::empty()).expect("request")
    };
    for refused in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cret-toke"),
        Some("Bearer s3cret-token-and-more"),
        Some("Basic s3cret-token"),
        Some("s3cret-token"),
        Some("Bearer "),
    ] {
        let response = router().oneshot(with(refused)).await.expect("response");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{refused:?}");
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
    }
    for admitted in ["Bearer s3cret-token", "bearer s3cret-token"] {
        let response = router()
            .oneshot(with(Some(admitted)))
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::OK, "{admitted}");
    }
    let (status, _, _) = get(router(), "/readyz").await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn config_reloads_count_by_result() {
    let m = metrics();
    let text = m.render();
    assert_eq!(
        sample(&text, r#"vestibule_config_reloads_total{result="failure"}"#),
        Some(0.0)
    );
    m.config_reload(true);
    m.config_reload(false);
    m.config_reload(false);
    let text = m.render();
    assert_eq!(
        sample(&text, r#"vestibule_config_reloads_total{result="success"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"vestibule_config_reloads_total{result="failure"}"#),
        Some(2.0)
    );
}
