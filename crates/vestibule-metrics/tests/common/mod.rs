//! Helpers shared by the integration tests: a registry with every metric fed,
//! the deploy files, PromQL names, and the Debian `prometheus` tools.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vestibule_metrics::Metrics;

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

pub const DASHBOARDS: &[&str] = &[
    "deploy/grafana/executive.json",
    "deploy/grafana/oncall.json",
    "deploy/grafana/debug.json",
];
pub const ALERTS: &str = "deploy/prometheus/alerts.yml";
pub const PROMETHEUS_CONFIG: &str = "deploy/prometheus/prometheus.yml";
pub const DOCS: &str = "docs/metrics.md";

/// A registry in which every method has been called, so every metric and
/// every optional series is present.
pub fn populated() -> Metrics {
    let m = Metrics::new("0.1.0-test").expect("metrics");
    for (method, result) in [
        ("publickey", "success"),
        ("certificate", "success"),
        ("password", "failure"),
        ("password", "locked_out"),
    ] {
        m.auth_attempt(method, result);
    }
    for protocol in [
        "shell",
        "exec",
        "sftp",
        "scp",
        "rsync",
        "port_forward",
        "jump",
    ] {
        m.session_started(protocol);
        m.session_started(protocol);
        m.session_ended(protocol, 1234, 56789, Duration::from_secs(75));
    }
    m.session_setup(Duration::from_millis(12));
    m.session_setup(Duration::from_millis(640));
    m.policy_decision("allow");
    m.policy_decision("deny");
    m.certificate_issued("user");
    m.certificate_issued("host");
    m.certificate_signing_failed("user");
    m.set_certificates("user", 4, 100);
    m.set_certificates("host", 1, 0);
    m.recording_finished(true);
    m.recording_finished(false);
    m.recording_failure("storage");
    m.set_recording_backlog_bytes(1 << 20);
    m.set_audit_sink_backlog("siem-file", 0);
    m.set_audit_sink_backlog("splunk", 250);
    m.audit_events_written(100);
    m.audit_events_dropped(0);
    m.time_to_grant(Duration::from_secs(240));
    m.replay_retrieval(true);
    m.replay_failure();
    m.config_reload(true);
    m.config_reload(false);
    m.lockout();
    m.breakglass_use();
    m.events_dropped(2);
    m.set_ready("ssh", true);
    m.set_ready("api", true);
    m.set_ready("audit", true);
    m
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
}

/// Every metric name in an exposition: the names of `# TYPE` lines (a
/// histogram's base name) and of samples (`_bucket`, `_sum`, `_count`).
pub fn exported_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.split(' ').next() {
                names.insert(name.to_owned());
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let name: String = line.chars().take_while(|c| is_name_char(*c)).collect();
            names.insert(name);
        }
    }
    names
}

/// Every `vestibule_...` or `process_...` word in `text`.
pub fn referenced_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for prefix in ["vestibule_", "process_"] {
        let mut from = 0;
        while let Some(at) = text[from..].find(prefix) {
            let start = from + at;
            let before = text[..start].chars().next_back();
            let name: String = text[start..]
                .chars()
                .take_while(|c| is_name_char(*c))
                .collect();
            from = start + prefix.len();
            // Part of a longer word, or the bare prefix itself.
            if before.is_some_and(|c| is_name_char(c) || c == '-' || c == '.')
                || name.len() == prefix.len()
            {
                continue;
            }
            names.insert(name);
        }
    }
    names
}

/// Every `expr` in a dashboard, with its panel's title.
pub fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(value: &serde_json::Value, title: &str, out: &mut Vec<(String, String)>) {
        match value {
            serde_json::Value::Object(map) => {
                let title = map
                    .get("title")
                    .and_then(|t| t.as_str())
                    .unwrap_or(title)
                    .to_owned();
                if let Some(expr) = map.get("expr").and_then(|e| e.as_str()) {
                    out.push((title.clone(), expr.to_owned()));
                }
                for child in map.values() {
                    walk(child, &title, out);
                }
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    walk(item, title, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, "", &mut out);
    out
}

/// A dashboard query with Grafana's variables as a plain query would have
/// them.
pub fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("$job", ".*")
        .replace("$instance", ".*")
}

/// The path of a tool from the Debian `prometheus` package, or `None` after
/// a loud notice that the test is skipped.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        eprintln!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !!! SKIPPED: `{name}` is not installed, so this check did not run.\n\
             !!! Install it with: apt-get install -y prometheus\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
    }
    found
}
