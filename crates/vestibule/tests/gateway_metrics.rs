//! End-to-end: Prometheus metrics and readiness on the HTTPS listener, checked
//! with `promtool`; the shipped alert rules validate.

mod common;

use std::fs;
use std::process::Command;
use std::time::Duration;

use common::{COMMAND_TIMEOUT, World, https_endpoint, run, wait_until};

fn curl(url: &str) -> common::Run {
    // The test gateway's certificate is self-signed; pinning is tested elsewhere.
    let mut cmd = Command::new("curl");
    cmd.args(["-sk", "-w", "\n%{http_code}", url]);
    run(&mut cmd, COMMAND_TIMEOUT)
}

fn promtool() -> Option<&'static str> {
    std::path::Path::new("/usr/bin/promtool")
        .exists()
        .then_some("/usr/bin/promtool")
}

#[test]
fn metrics_count_sessions_and_pass_promtool() {
    let w = World::new();
    w.exec("alice:web1", "echo counted").assert_ok();
    w.exec("alice:nosuch", "true").assert_failed();
    let address = https_endpoint(&w).0;
    let body = wait_until(Duration::from_secs(15), || {
        let out = curl(&format!("https://{address}/metrics"));
        let text = out.stdout_str();
        (text.contains("vestibule_sessions_total{protocol=\"exec\"} 1")
            && text.contains("vestibule_recordings_total{state=\"complete\"} 1"))
        .then_some(text)
    })
    .unwrap_or_else(|| {
        panic!(
            "metrics never showed the session:\n{}",
            curl(&format!("https://{address}/metrics")).stdout_str()
        )
    });
    for needle in [
        "vestibule_auth_attempts_total{method=\"publickey\",result=\"success\"}",
        "vestibule_policy_decisions_total{result=\"allow\"}",
        "vestibule_session_setup_seconds_bucket",
        "vestibule_certificates_issued_total{kind=\"user\"}",
    ] {
        assert!(body.contains(needle), "no {needle} in:\n{body}");
    }
    let ready = curl(&format!("https://{address}/readyz"));
    assert!(ready.stdout_str().trim_end().ends_with("200"), "{ready}");

    let Some(promtool) = promtool() else {
        eprintln!(
            "\n*** NOTICE: promtool not installed (Debian prometheus); exposition check SKIPPED ***\n"
        );
        return;
    };
    let exposition = body
        .rsplit_once('\n')
        .map_or(body.as_str(), |(text, _code)| text);
    let file = w.gw.data_dir().join("metrics.txt");
    fs::write(&file, exposition).unwrap();
    let mut check = Command::new("sh");
    check
        .arg("-c")
        .arg(format!("{promtool} check metrics < {}", file.display()));
    let out = run(&mut check, COMMAND_TIMEOUT);
    assert!(out.success(), "promtool check metrics:\n{out}");
}

/// The value of the sample `series` in an exposition.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Scrape until `done` holds for the exposition; panic with the last one.
fn scrape_until(w: &World, what: &str, done: impl Fn(&str) -> bool) -> String {
    let address = https_endpoint(w).0;
    let url = format!("https://{address}/metrics");
    wait_until(Duration::from_secs(20), || {
        let text = curl(&url).stdout_str();
        done(&text).then_some(text)
    })
    .unwrap_or_else(|| panic!("metrics never showed {what}:\n{}", curl(&url).stdout_str()))
}

#[test]
fn replays_by_the_cli_are_counted_by_the_gateway() {
    let w = World::new();
    w.exec("alice:web1", "echo replay-me").assert_ok();
    let recording = wait_until(Duration::from_secs(20), || {
        let out = w.gw.cli_ok(&["recordings", "list", "--json"]);
        let list: Vec<serde_json::Value> = serde_json::from_str(&out.stdout_str()).ok()?;
        list.into_iter()
            .find(|r| r["state"] != "recording" && r["digest"].is_string())
    })
    .expect("a finished recording");
    let id = recording["id"].as_str().expect("id").to_owned();
    let success = r#"vestibule_replay_retrievals_total{result="success"}"#;
    let failure = r#"vestibule_replay_retrievals_total{result="failure"}"#;
    let before = scrape_until(&w, "the replay counters", |t| sample(t, success).is_some());
    assert_eq!(sample(&before, success), Some(0.0), "{before}");
    assert_eq!(sample(&before, failure), Some(0.0), "{before}");

    let played = w.gw.cli_ok(&["play", &id, "--speed", "1000"]);
    assert!(played.stdout_str().contains("replay-me"), "{played}");
    let exported = w.gw.data_dir().join("exported.cast");
    w.gw.cli_ok(&[
        "recordings",
        "export",
        &id,
        "--output",
        exported.to_str().expect("utf-8"),
    ]);
    w.gw.cli(&["play", "nosuchrecording"]).assert_failed();
    // A changed recording is not replayed as evidence.
    let path = recording["location"]["path"]
        .as_str()
        .map(std::path::PathBuf::from)
        .expect("local path");
    let mut bytes = fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    fs::write(&path, bytes).unwrap();
    let tampered = w.gw.cli(&["play", &id]);
    tampered.assert_failed();
    assert!(tampered.stderr_str().contains("changed"), "{tampered}");

    let body = scrape_until(&w, "two successful and two failed replays", |t| {
        sample(t, success) == Some(2.0) && sample(t, failure) == Some(2.0)
    });
    assert!(body.contains("vestibule_replay_retrievals_total"));
    let events = w.gw.cli_ok(&[
        "audit",
        "search",
        "--type",
        "recording.replay",
        "--json",
        "--oldest-first",
    ]);
    let events: Vec<serde_json::Value> = events
        .stdout_str()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let summary: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            let e = &e["event"];
            (
                e["vestibule"]["details"]["operation"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
                e["event"]["outcome"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("play".into(), "success".into()),
            ("export".into(), "success".into()),
            ("play".into(), "failure".into()),
            ("play".into(), "failure".into()),
        ],
        "{events:?}"
    );
    assert_eq!(
        events[0]["event"]["vestibule"]["details"]["recording_id"],
        id.as_str()
    );
    assert_eq!(
        events[0]["event"]["vestibule"]["session_id"],
        recording["session_id"]
    );
}

#[test]
fn policy_reloads_are_counted_by_result() {
    let w = World::new();
    let success = r#"vestibule_config_reloads_total{result="success"}"#;
    let failure = r#"vestibule_config_reloads_total{result="failure"}"#;
    // The load at start counts.
    scrape_until(&w, "the start-up load", |t| {
        sample(t, success) == Some(1.0) && sample(t, failure) == Some(0.0)
    });
    fs::write(
        w.gw.data_dir().join("policies").join("broken.cedar"),
        "permit (principal, action, resource",
    )
    .unwrap();
    let address = https_endpoint(&w).0;
    let refused = wait_until(Duration::from_secs(20), || {
        // Policy files are looked at when a decision is made.
        w.exec("alice:web1", "true").assert_ok();
        let text = curl(&format!("https://{address}/metrics")).stdout_str();
        (sample(&text, failure) == Some(1.0)).then_some(text)
    });
    assert!(refused.is_some(), "the refused reload was never counted");
}

#[test]
fn metrics_bearer_token_guards_metrics_only() {
    use std::os::unix::fs::PermissionsExt;
    let mut w = World::new();
    let data = w.gw.data_dir();
    let token_file = data.join("metrics_token");
    fs::write(&token_file, "t0ken-for-prometheus\n").unwrap();
    fs::set_permissions(&token_file, fs::Permissions::from_mode(0o644)).unwrap();
    let config = data.join("vestibule.toml");
    let text = fs::read_to_string(&config).unwrap();
    assert!(text.contains("# bearer_token_file = \"metrics_token\""));
    fs::write(
        &config,
        text.replace(
            "# bearer_token_file = \"metrics_token\"",
            "bearer_token_file = \"metrics_token\"",
        ),
    )
    .unwrap();
    // A token file others can read is refused at start.
    w.gw.stop();
    let refused = w.gw.cli(&[
        "serve",
        "--ssh-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
    ]);
    refused.assert_failed();
    assert!(refused.stderr_str().contains("metrics_token"), "{refused}");
    fs::set_permissions(&token_file, fs::Permissions::from_mode(0o600)).unwrap();
    w.gw.restart();

    let address = https_endpoint(&w).0;
    let metrics = format!("https://{address}/metrics");
    let bare = curl(&metrics);
    assert!(bare.stdout_str().trim_end().ends_with("401"), "{bare}");
    let wrong = run(
        Command::new("curl").args([
            "-sk",
            "-w",
            "\n%{http_code}",
            "-H",
            "Authorization: Bearer t0ken-for-prometheu",
            &metrics,
        ]),
        COMMAND_TIMEOUT,
    );
    assert!(wrong.stdout_str().trim_end().ends_with("401"), "{wrong}");
    let right = run(
        Command::new("curl").args([
            "-sk",
            "-w",
            "\n%{http_code}",
            "-H",
            "Authorization: Bearer t0ken-for-prometheus",
            &metrics,
        ]),
        COMMAND_TIMEOUT,
    );
    assert!(right.stdout_str().trim_end().ends_with("200"), "{right}");
    assert!(
        right.stdout_str().contains("vestibule_build_info"),
        "{right}"
    );
    for open in ["readyz", "healthz"] {
        let out = curl(&format!("https://{address}/{open}"));
        assert!(
            out.stdout_str().trim_end().ends_with("200"),
            "{open}: {out}"
        );
    }
    assert!(!w.gw.log().contains("t0ken-for-prometheus"), "token logged");
}
