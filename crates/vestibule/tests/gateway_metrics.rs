//! End-to-end: Prometheus metrics and readiness on the HTTPS listener, checked
//! with `promtool`; the shipped alert rules validate.

mod common;

use std::fs;
use std::process::Command;
use std::time::Duration;

use common::{COMMAND_TIMEOUT, World, run, wait_until};

/// The HTTPS address `serve` printed (it changes on restart).
fn https_address(w: &World) -> String {
    let stdout_log =
        w.gw.data_dir()
            .parent()
            .expect("gateway dir")
            .join("gateway.stdout");
    let line = wait_until(COMMAND_TIMEOUT, || {
        fs::read_to_string(&stdout_log)
            .ok()?
            .lines()
            .rev()
            .find(|l| l.contains("HTTPS listening on "))
            .map(str::to_owned)
    })
    .expect("serve never printed its HTTPS line");
    line.split_once("HTTPS listening on ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .expect("address")
        .to_owned()
}

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
    let address = https_address(&w);
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
