//! The alerts, dashboards and documentation use exactly the metric names
//! that the registry exports, and the dashboards are importable Grafana JSON.

mod common;

use std::collections::BTreeSet;

use common::*;

fn exported() -> BTreeSet<String> {
    exported_names(&populated().render())
}

/// Metric families (the `# TYPE` names).
fn families() -> BTreeSet<String> {
    populated()
        .render()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect()
}

fn assert_all_exported(file: &str, text: &str) {
    let exported = exported();
    let referenced = referenced_names(text);
    let unknown: Vec<_> = referenced.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "{file} names metrics that are not exported: {unknown:?}"
    );
}

#[test]
fn alert_rules_name_only_exported_metrics() {
    let text = read(ALERTS);
    let referenced = referenced_names(&text);
    assert!(referenced.len() >= 10, "{referenced:?}");
    assert_all_exported(ALERTS, &text);
}

#[test]
fn dashboard_queries_name_only_exported_metrics() {
    for file in DASHBOARDS {
        let dashboard: serde_json::Value = serde_json::from_str(&read(file)).expect("json");
        let queries = dashboard_queries(&dashboard);
        assert!(!queries.is_empty(), "{file} has no queries");
        let all: String = queries
            .iter()
            .map(|(_, expr)| expr.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        assert_all_exported(file, &all);
        // Template variable queries too.
        assert_all_exported(file, &read(file));
    }
}

#[test]
fn every_metric_is_in_the_debug_dashboard_and_the_docs() {
    let debug = read("deploy/grafana/debug.json");
    let docs = read(DOCS);
    for family in families() {
        assert!(
            debug.contains(&family),
            "debug.json has no panel for {family}"
        );
        assert!(
            docs.contains(&format!("`{family}`")),
            "docs/metrics.md does not describe {family}"
        );
    }
    let mut doc_names = referenced_names(&docs);
    doc_names.remove("vestibule_metrics"); // the crate's path in code
    let exported = exported();
    let unknown: Vec<_> = doc_names.difference(&exported).collect();
    assert!(unknown.is_empty(), "docs name unknown metrics: {unknown:?}");
}

#[test]
fn every_alert_is_documented_with_a_runbook() {
    let alerts = read(ALERTS);
    let docs = read(DOCS);
    let names: Vec<&str> = alerts
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        assert!(
            docs.contains(&format!("### {name}")),
            "docs/metrics.md has no runbook section for {name}"
        );
        assert!(
            alerts.contains(&format!("docs/metrics.md#{}", name.to_lowercase())),
            "{name} has no runbook annotation pointing at its section"
        );
    }
}

#[test]
fn dashboards_are_importable_grafana_json() {
    let mut uids = BTreeSet::new();
    for file in DASHBOARDS {
        let d: serde_json::Value = serde_json::from_str(&read(file)).expect("json");
        assert_eq!(d["schemaVersion"], 39, "{file}");
        assert!(d["id"].is_null(), "{file}: id must be null to import");
        let uid = d["uid"].as_str().expect("uid");
        assert!(uids.insert(uid.to_owned()), "{file}: duplicate uid {uid}");
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
        let inputs = d["__inputs"].as_array().expect("__inputs");
        assert!(
            inputs
                .iter()
                .any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"),
            "{file}: no DS_PROMETHEUS input"
        );
        let panels = d["panels"].as_array().expect("panels");
        let mut ids = BTreeSet::new();
        for panel in panels {
            let title = panel["title"].as_str().unwrap_or("?");
            let id = panel["id"].as_u64().expect("panel id");
            assert!(ids.insert(id), "{file}: duplicate panel id {id}");
            let grid = &panel["gridPos"];
            let (x, w) = (
                grid["x"].as_u64().expect("x"),
                grid["w"].as_u64().expect("w"),
            );
            assert!(x + w <= 24, "{file}: {title} is wider than the grid");
            assert!(grid["h"].as_u64().is_some() && grid["y"].as_u64().is_some());
            if panel["type"] == "row" {
                continue;
            }
            assert_eq!(
                panel["datasource"]["uid"], "${DS_PROMETHEUS}",
                "{file}: {title}"
            );
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{file}: {title} has no query");
            for target in targets {
                assert_eq!(target["datasource"]["uid"], "${DS_PROMETHEUS}");
                assert!(target["expr"].as_str().is_some_and(|e| !e.is_empty()));
                assert!(target["refId"].as_str().is_some());
            }
        }
        for variable in d["templating"]["list"].as_array().expect("templating") {
            assert_eq!(variable["datasource"]["uid"], "${DS_PROMETHEUS}");
        }
    }
}

#[test]
fn required_panels_exist() {
    let titles = |file: &str| -> Vec<String> {
        let d: serde_json::Value = serde_json::from_str(&read(file)).expect("json");
        d["panels"]
            .as_array()
            .expect("panels")
            .iter()
            .filter_map(|p| p["title"].as_str().map(str::to_lowercase))
            .collect()
    };
    let has = |titles: &[String], word: &str| titles.iter().any(|t| t.contains(word));
    let executive = titles("deploy/grafana/executive.json");
    for word in [
        "availability",
        "login success",
        "time to grant",
        "recording completeness",
    ] {
        assert!(has(&executive, word), "executive: no {word} panel");
    }
    let oncall = titles("deploy/grafana/oncall.json");
    for word in [
        "active sessions",
        "session setup latency",
        "failed logins",
        "audit sink backlog",
        "recording backlog",
        "policy decisions",
    ] {
        assert!(has(&oncall, word), "oncall: no {word} panel");
    }
}
