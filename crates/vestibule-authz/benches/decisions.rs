//! Decision latency of the Cedar engine with 10, 1,000 and 10,000 policies in
//! the policy files (plus the subject's role policies), p50 and p99.
//!
//! Run: `cargo bench -p vestibule-authz --bench decisions`

use std::time::{Duration, Instant};

use vestibule_authz::{
    Action, Authorizer, CedarEngine, PolicyDir, RequestContext, SessionKind, Subject,
};
use vestibule_core::{HostKeyPolicy, Label, Role, Selector, Target};

const DECISIONS: usize = 2_000;

fn main() {
    println!("| policies | p50 | p99 | mean |");
    println!("|---:|---:|---:|---:|");
    for count in [10, 1_000, 10_000] {
        let dir = std::env::temp_dir().join(format!(
            "vestibule-bench-policies-{count}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("policy dir");
        std::fs::write(dir.join("many.cedar"), policies(count)).expect("write policies");
        let load = Instant::now();
        let engine = CedarEngine::open(PolicyDir::new(&dir)).expect("policies load");
        let loaded_in = load.elapsed();
        let authorizer = Authorizer::new(Box::new(engine));
        let subject = Subject::new(
            "alice",
            vec![Role {
                name: "ops".into(),
                targets: Selector::parse("env=prod").expect("selector"),
                logins: vec!["root".into()],
                allow_port_forwarding: false,
                require_mfa: false,
            }],
        );
        let target = Target {
            name: "web1".into(),
            host: "10.0.0.1".into(),
            port: 22,
            default_login: None,
            labels: vec![Label::parse("env=prod").expect("label")],
            host_key: HostKeyPolicy::TrustOnFirstUse { recorded: None },
            credential: Default::default(),
        };
        let mut context = RequestContext::now("publickey");
        context.ticket = Some("INC-1".into());
        let action = Action::Session {
            login: "root",
            kind: SessionKind::Shell,
        };
        let mut times: Vec<Duration> = Vec::with_capacity(DECISIONS);
        let runs = if count >= 10_000 {
            DECISIONS / 10
        } else {
            DECISIONS
        };
        for _ in 0..runs {
            let start = Instant::now();
            let verdict = authorizer.explain(&subject, &target, action, &context);
            times.push(start.elapsed());
            assert!(verdict.allowed, "{verdict:?}");
        }
        times.sort();
        let at = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize];
        let mean = times.iter().sum::<Duration>() / times.len() as u32;
        println!(
            "| {count} | {:.1} µs | {:.1} µs | {:.1} µs |  (loaded and validated in {:.0} ms, {runs} decisions)",
            at(0.5).as_secs_f64() * 1e6,
            at(0.99).as_secs_f64() * 1e6,
            mean.as_secs_f64() * 1e6,
            loaded_in.as_secs_f64() * 1e3,
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `count` policies of the kinds operators write: per-target permits with
/// label and login conditions, a time window, and a few forbids.
fn policies(count: usize) -> String {
    let mut text = String::new();
    for i in 0..count {
        let policy = match i % 4 {
            0 => format!(
                "permit (principal in Vestibule::Role::\"team{i}\", action in Vestibule::Action::\"ssh.session\", resource)\n\
                 when {{ resource.name == \"host{i}\" && context.login == \"svc{i}\" }};\n"
            ),
            1 => format!(
                "permit (principal == Vestibule::User::\"user{i}\", action == Vestibule::Action::\"ssh.exec\", resource)\n\
                 when {{ resource.hasTag(\"team\") && resource.getTag(\"team\") == \"t{i}\" && context.time.hour >= 9 }};\n"
            ),
            2 => format!(
                "forbid (principal == Vestibule::User::\"user{i}\", action, resource)\n\
                 when {{ resource.hasTag(\"env\") && resource.getTag(\"env\") == \"prod\" }} unless {{ context has ticket }};\n"
            ),
            _ => format!(
                "permit (principal in Vestibule::Group::\"g{i}\", action == Vestibule::Action::\"ssh.sftp\", resource)\n\
                 when {{ context has source_ip && context.source_ip.isInRange(ip(\"10.{}.0.0/16\")) }};\n",
                i % 256
            ),
        };
        text.push_str(&policy);
    }
    text
}
