//! A real Prometheus (Debian package `prometheus`) scrapes the router's
//! `/metrics` with up=1, loads the shipped alert rules (all evaluate without
//! error, and the break-glass and signing alerts fire when their counters
//! move), and answers every dashboard query.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use vestibule_metrics::{Metrics, metrics_router};

/// Ends the Prometheus this test started, by its own handle.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// GET a Prometheus API path; the JSON body, or `None` if it cannot be had.
fn api(port: u16, path: &str) -> Option<Value> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    // HTTP/1.0: no chunked encoding, the server closes after the body.
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    serde_json::from_str(body).ok()
}

fn query(port: u16, promql: &str) -> Value {
    api(port, &format!("/api/v1/query?query={}", encode(promql)))
        .unwrap_or_else(|| panic!("no answer to {promql}"))
}

fn wait_for(what: &str, log: &Path, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    panic!("timed out waiting for {what}; prometheus log:\n{log}");
}

fn firing(port: u16, alert: &str) -> bool {
    let answer = query(
        port,
        &format!("ALERTS{{alertname=\"{alert}\", alertstate=\"firing\"}}"),
    );
    answer["data"]["result"]
        .as_array()
        .is_some_and(|r| !r.is_empty())
}

#[test]
fn real_prometheus_scrapes_evaluates_rules_and_answers_dashboards() {
    let Some(prometheus) = tool("prometheus") else {
        return;
    };

    // The router on a loopback port, served by its own runtime.
    let metrics = Metrics::new("0.1.0-test").expect("metrics");
    metrics.set_ready("ssh", true);
    metrics.set_ready("audit", false);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .expect("bind");
    let gateway_port = listener.local_addr().expect("addr").port();
    let router = metrics_router::<()>(metrics.clone());
    runtime.spawn(async move { axum::serve(listener, router).await });

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("prometheus.yml");
    let alerts = root().join(ALERTS).canonicalize().expect("alerts path");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {alerts}\n\
             scrape_configs:\n  - job_name: vestibule\n    static_configs:\n      \
             - targets: [\"127.0.0.1:{gateway_port}\"]\n",
            alerts = alerts.display()
        ),
    )
    .expect("write config");
    let port = free_port();
    let log_path = dir.path().join("prometheus.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let child = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    let _running = Running(child);

    // up == 1: Prometheus parsed the exposition.
    wait_for("up == 1", &log_path, || {
        api(
            port,
            &format!("/api/v1/query?query={}", encode("up{job=\"vestibule\"}")),
        )
        .and_then(|a| {
            a["data"]["result"][0]["value"][1]
                .as_str()
                .map(str::to_owned)
        })
        .is_some_and(|v| v == "1")
    });
    let info = query(port, "vestibule_build_info");
    assert_eq!(
        info["data"]["result"][0]["metric"]["version"], "0.1.0-test",
        "{info}"
    );

    // The counters were scraped at zero; now they move.
    metrics.breakglass_use();
    metrics.certificate_signing_failed("user");
    metrics.session_started("shell");
    metrics.session_setup(Duration::from_millis(30));
    wait_for("VestibuleBreakGlassUsed firing", &log_path, || {
        firing(port, "VestibuleBreakGlassUsed")
    });
    wait_for(
        "VestibuleCertificateSigningFailing firing",
        &log_path,
        || firing(port, "VestibuleCertificateSigningFailing"),
    );
    let pending = query(
        port,
        "ALERTS{alertname=\"VestibuleNotReady\", component=\"audit\"}",
    );
    assert_eq!(
        pending["data"]["result"][0]["metric"]["alertstate"], "pending",
        "{pending}"
    );
    assert!(!firing(port, "VestibuleGatewayDown"));

    // Every rule evaluated without error.
    wait_for("every rule evaluated", &log_path, || {
        let Some(rules) = api(port, "/api/v1/rules") else {
            return false;
        };
        let all: Vec<&Value> = rules["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        all.len() >= 10 && all.iter().all(|r| r["health"] == "ok")
    });

    // Every dashboard query runs.
    let mut with_data = 0;
    let mut total = 0;
    for file in DASHBOARDS {
        let dashboard: Value = serde_json::from_str(&read(file)).expect("json");
        for (title, expr) in dashboard_queries(&dashboard) {
            let promql = substitute(&expr);
            let answer = query(port, &promql);
            assert_eq!(
                answer["status"], "success",
                "{file}: {title}: {promql}: {answer}"
            );
            total += 1;
            if answer["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
            {
                with_data += 1;
            }
        }
    }
    // Most queries see data after a few scrapes (ratios of nothing and
    // quantiles of empty histograms may not).
    assert!(with_data * 2 > total, "{with_data} of {total} with data");
    let active = query(port, "sum(vestibule_sessions_active{job=~\".*\"})");
    assert_eq!(active["data"]["result"][0]["value"][1], "1", "{active}");
}
