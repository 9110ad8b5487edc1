//! `promtool` (Debian package `prometheus`) checks the exposition, the alert
//! rules, the example configuration and every dashboard query.

mod common;

use std::fs::File;
use std::process::{Command, Output, Stdio};

use common::*;

fn show(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn exposition_passes_promtool_check_metrics_without_lint_problems() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    // A fresh registry and a fully fed one.
    let fresh = vestibule_metrics::Metrics::new("0.1.0")
        .expect("metrics")
        .render();
    for (name, text) in [("fresh", fresh), ("populated", populated().render())] {
        let path = dir.path().join(format!("{name}.prom"));
        std::fs::write(&path, &text).expect("write");
        let output = Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(File::open(&path).expect("open"))
            .output()
            .expect("run promtool");
        assert!(output.status.success(), "{name}: {}", show(&output));
        assert!(
            output.stdout.is_empty() && output.stderr.is_empty(),
            "{name}: promtool reported problems: {}",
            show(&output)
        );
    }
}

#[test]
fn alert_rules_pass_promtool_check_rules() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let output = Command::new(promtool)
        .args(["check", "rules"])
        .arg(root().join(ALERTS))
        .output()
        .expect("run promtool");
    assert!(output.status.success(), "{}", show(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("SUCCESS"),
        "{}",
        show(&output)
    );
}

#[test]
fn example_config_passes_promtool_check_config() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let output = Command::new(promtool)
        .args(["check", "config"])
        .arg(root().join(PROMETHEUS_CONFIG))
        .stdin(Stdio::null())
        .output()
        .expect("run promtool");
    assert!(output.status.success(), "{}", show(&output));
}

/// Every dashboard query, as a recording rule, is valid PromQL.
#[test]
fn dashboard_queries_are_valid_promql() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    let mut count = 0;
    for file in DASHBOARDS {
        let dashboard: serde_json::Value = serde_json::from_str(&read(file)).expect("json");
        for (_, expr) in dashboard_queries(&dashboard) {
            count += 1;
            // A JSON string is a valid YAML double-quoted scalar.
            let quoted = serde_json::to_string(&substitute(&expr)).expect("quote");
            rules.push_str(&format!(
                "      - record: dashboard:query_{count}\n        expr: {quoted}\n"
            ));
        }
    }
    assert!(count > 40, "only {count} queries found");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("dashboards.rules.yml");
    std::fs::write(&path, &rules).expect("write");
    let output = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .expect("run promtool");
    assert!(output.status.success(), "{}\n{rules}", show(&output));
}
