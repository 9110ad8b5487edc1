use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use vestibule_core::{HostKeyPolicy, Label, Role, Selector, Target};

use super::*;

fn target(name: &str, labels: &[&str]) -> Target {
    Target {
        name: name.into(),
        host: "10.0.0.1".into(),
        port: 22,
        default_login: None,
        labels: labels.iter().map(|l| Label::parse(l).unwrap()).collect(),
        host_key: HostKeyPolicy::TrustOnFirstUse { recorded: None },
        credential: Default::default(),
    }
}

fn role(name: &str, sel: &str, logins: &[&str], fwd: bool) -> Role {
    Role {
        name: name.into(),
        targets: Selector::parse(sel).unwrap(),
        logins: logins.iter().map(|s| s.to_string()).collect(),
        allow_port_forwarding: fwd,
        require_mfa: false,
    }
}

fn alice(roles: Vec<Role>) -> Subject {
    Subject::new("alice", roles)
}

fn ctx() -> RequestContext {
    RequestContext::now("publickey")
}

fn shell(login: &str) -> Action<'_> {
    Action::Session {
        login,
        kind: SessionKind::Shell,
    }
}

fn engine_with(files: &[(&str, &str)]) -> (tempfile::TempDir, Authorizer) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let engine = CedarEngine::open(PolicyDir::new(dir.path())).unwrap();
    (dir, Authorizer::new(Box::new(engine)))
}

/// The engine looks for changed files at most every 100 ms.
fn past_refresh() {
    std::thread::sleep(Duration::from_millis(150));
}

fn problems(dir: &Path) -> Vec<PolicyProblem> {
    match CedarEngine::check(&PolicyDir::new(dir)) {
        Err(PolicyError::Invalid { problems }) => problems,
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn deny_by_default() {
    let authz = Authorizer::roles_only().unwrap();
    let Refused {
        denial: err,
        verdict,
    } = *authz
        .authorize_session(
            &alice(vec![]),
            &target("web1", &["env=prod"]),
            "root",
            SessionKind::Shell,
            &ctx(),
        )
        .unwrap_err();
    assert_eq!(err.to_string(), "alice may not use target web1");
    assert!(verdict.policy_ids.is_empty());
    assert_eq!(verdict.policies_text(), "default-deny");
}

#[test]
fn a_role_that_requires_mfa_permits_only_with_a_second_factor() {
    let authz = Authorizer::roles_only().unwrap();
    let mut prod = role("prod", "web1", &["root"], true);
    prod.require_mfa = true;
    let who = alice(vec![prod]);
    let web = target("web1", &[]);
    let without = authz.authorize_session(&who, &web, "root", SessionKind::Shell, &ctx());
    assert!(without.is_err(), "a single factor must not do");
    let mut with_mfa = ctx();
    with_mfa.mfa = true;
    let grant = authz
        .authorize_session(&who, &web, "root", SessionKind::Shell, &with_mfa)
        .unwrap();
    assert_eq!(grant.because().as_str(), "role:prod");
    assert!(grant.may_forward_ports());
}

#[test]
fn roles_stand_for_policies() {
    let authz = Authorizer::roles_only().unwrap();
    let who = alice(vec![role("dev", "env=staging", &["deploy"], false)]);
    let web = target("web1", &["env=staging"]);
    let grant = authz
        .authorize_session(&who, &web, "deploy", SessionKind::Shell, &ctx())
        .unwrap();
    assert_eq!(
        (grant.login(), grant.because().as_str()),
        ("deploy", "role:dev")
    );
    assert!(!grant.may_forward_ports());
    let Refused { denial: err, .. } = *authz
        .authorize_session(&who, &web, "root", SessionKind::Shell, &ctx())
        .unwrap_err();
    assert_eq!(err.to_string(), "alice may not log in to web1 as root");
    let prod = target("db1", &["env=prod"]);
    assert!(
        authz
            .authorize_session(&who, &prod, "deploy", SessionKind::Sftp, &ctx())
            .is_err()
    );
    // A target without the label at all is simply not covered (no evaluation error).
    let bare = target("bare", &[]);
    let verdict = authz.explain(&who, &bare, shell("deploy"), &ctx());
    assert!(!verdict.allowed && verdict.errors.is_empty(), "{verdict:?}");
}

#[test]
fn forwarding_needs_a_role_that_allows_it() {
    let authz = Authorizer::roles_only().unwrap();
    let web = target("web1", &["env=staging"]);
    let who = alice(vec![role("dev", "*", &["deploy"], false)]);
    let session = authz
        .authorize_session(&who, &web, "deploy", SessionKind::Shell, &ctx())
        .unwrap();
    let Refused { denial: err, .. } = *authz
        .authorize_forward(&who, &session, "localhost", 80, &ctx())
        .unwrap_err();
    assert_eq!(err.to_string(), "alice may not forward ports through web1");
    let who = alice(vec![
        role("dev", "*", &["deploy"], false),
        role("tunnels", "web1", &[], true),
    ]);
    let fwd = authz
        .authorize_forward(&who, &session, "localhost", 80, &ctx())
        .unwrap();
    assert_eq!(
        (fwd.port(), fwd.because()),
        (80, "role:tunnels:port_forward")
    );
}

#[test]
fn allowed_logins_merge_roles_and_policy_literals() {
    let (_dir, authz) = engine_with(&[(
        "ops.cedar",
        r#"permit (principal, action == Vestibule::Action::"ssh.shell", resource)
           when { context.login == "www" && resource.name == "web1" };"#,
    )]);
    let who = alice(vec![
        role("a", "*", &["root", "deploy"], false),
        role("c", "db1", &["postgres"], false),
    ]);
    let logins = authz.allowed_logins(&who, &target("web1", &["env=x"]), &ctx());
    assert_eq!(logins, ["deploy", "root", "www"]);
}

#[test]
fn forbid_overrides_permit_and_says_why() {
    let (_dir, authz) = engine_with(&[(
        "prod.cedar",
        r#"
@id("prod-needs-ticket")
@reason("production needs a ticket: ssh -o SetEnv=VESTIBULE_TICKET=INC-1234 ...")
forbid (principal, action in Vestibule::Action::"ssh.session", resource)
when { resource.hasTag("env") && resource.getTag("env") == "prod" }
unless { context has ticket };
"#,
    )]);
    let who = alice(vec![role("ops", "*", &["root"], false)]);
    let prod = target("db1", &["env=prod"]);
    let Refused {
        denial: err,
        verdict,
    } = *authz
        .authorize_session(&who, &prod, "root", SessionKind::Shell, &ctx())
        .unwrap_err();
    assert_eq!(verdict.policy_ids, ["prod-needs-ticket"]);
    assert_eq!(
        err.to_string(),
        "access to db1 as root refused: production needs a ticket: ssh -o SetEnv=VESTIBULE_TICKET=INC-1234 ..."
    );
    let mut with_ticket = ctx();
    with_ticket.ticket = Some("INC-1234".into());
    let grant = authz
        .authorize_session(&who, &prod, "root", SessionKind::Shell, &with_ticket)
        .unwrap();
    assert_eq!(grant.because(), "role:ops");
    // Other targets are unaffected.
    assert!(
        authz
            .authorize_session(
                &who,
                &target("web1", &["env=dev"]),
                "root",
                SessionKind::Shell,
                &ctx()
            )
            .is_ok()
    );
}

#[test]
fn time_window_policy() {
    let (_dir, authz) = engine_with(&[(
        "hours.cedar",
        r#"permit (principal == Vestibule::User::"alice", action, resource)
           when { context.time.hour >= 9 && context.time.hour < 17 && context.time.weekday != "Sun" };"#,
    )]);
    let who = alice(vec![]);
    let web = target("web1", &[]);
    let mut at = ctx();
    // 2026-11-28 (a Saturday) 10:30 UTC, then 20:00 UTC, then Sunday 10:30.
    at.now = UNIX_EPOCH + Duration::from_secs(1_795_861_800);
    let verdict = authz.explain(&who, &web, shell("root"), &at);
    assert!(verdict.allowed, "{verdict:?}");
    assert_eq!(verdict.policy_ids, ["hours.cedar#1"]);
    at.now = UNIX_EPOCH + Duration::from_secs(1_795_896_000);
    assert!(!authz.explain(&who, &web, shell("root"), &at).allowed);
    at.now = UNIX_EPOCH + Duration::from_secs(1_795_861_800 + 86_400);
    assert!(!authz.explain(&who, &web, shell("root"), &at).allowed);
}

#[test]
fn exec_command_and_source_address_are_in_context() {
    let (_dir, authz) = engine_with(&[(
        "ci.cedar",
        r#"permit (principal, action == Vestibule::Action::"ssh.exec", resource)
           when { context has command && context.command like "uptime*"
                  && context has source_ip && context.source_ip.isInRange(ip("10.0.0.0/8")) };"#,
    )]);
    let who = alice(vec![]);
    let web = target("web1", &[]);
    let exec = |command| Action::Session {
        login: "ci",
        kind: SessionKind::Exec { command },
    };
    let mut inside = ctx();
    inside.source_ip = Some("10.1.2.3".parse().unwrap());
    assert!(authz.explain(&who, &web, exec("uptime"), &inside).allowed);
    assert!(!authz.explain(&who, &web, exec("rm -rf /"), &inside).allowed);
    assert!(!authz.explain(&who, &web, exec("uptime"), &ctx()).allowed);
    let Refused { denial: err, .. } = *authz
        .authorize_session(&who, &web, "ci", SessionKind::Shell, &inside)
        .unwrap_err();
    assert_eq!(err.to_string(), "alice may not use target web1");
}

#[test]
fn syntax_errors_have_positions() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ok.cedar"),
        "permit (principal, action, resource);\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.cedar"),
        "permit (principal, action, resource);\n\npermit (principal, action resource);\n",
    )
    .unwrap();
    let found = problems(dir.path());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].file.ends_with("bad.cedar"));
    assert_eq!(found[0].line, Some(3), "{found:?}");
    assert!(found[0].column.is_some());
    assert!(
        found[0]
            .to_string()
            .starts_with(&format!("{}:3:", dir.path().join("bad.cedar").display()))
    );
}

#[test]
fn schema_errors_have_positions() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("typo.cedar"),
        "// comment\npermit (principal, action, resource)\nwhen { resource.labels == \"x\" };\n",
    )
    .unwrap();
    let found = problems(dir.path());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].line, Some(3), "{found:?}");
    assert!(found[0].message.contains("labels"), "{found:?}");
    // Unguarded tag access is refused by the validator too.
    std::fs::write(
        dir.path().join("typo.cedar"),
        "permit (principal, action, resource) when { resource.getTag(\"env\") == \"prod\" };\n",
    )
    .unwrap();
    assert_eq!(problems(dir.path()).len(), 1);
}

#[test]
fn a_bad_edit_keeps_the_policies_in_force() {
    let (dir, authz) = engine_with(&[(
        "all.cedar",
        r#"permit (principal, action, resource) when { context.login == "root" };"#,
    )]);
    let who = alice(vec![]);
    let web = target("web1", &[]);
    assert!(authz.explain(&who, &web, shell("root"), &ctx()).allowed);
    std::fs::write(
        dir.path().join("all.cedar"),
        "permit (principal, action, resource",
    )
    .unwrap();
    assert!(authz.explain(&who, &web, shell("root"), &ctx()).allowed);
    std::fs::write(
        dir.path().join("all.cedar"),
        r#"permit (principal, action, resource) when { context.login == "deploy" };"#,
    )
    .unwrap();
    past_refresh();
    assert!(!authz.explain(&who, &web, shell("root"), &ctx()).allowed);
    assert!(authz.explain(&who, &web, shell("deploy"), &ctx()).allowed);
}

#[test]
fn groups_and_role_membership_are_entity_parents() {
    let (_dir, authz) = engine_with(&[(
        "groups.cedar",
        r#"permit (principal in Vestibule::Group::"ops", action in Vestibule::Action::"ssh.session", resource);"#,
    )]);
    let web = target("web1", &[]);
    let mut who = alice(vec![]);
    assert!(!authz.explain(&who, &web, shell("root"), &ctx()).allowed);
    who.groups.push("ops".into());
    assert!(authz.explain(&who, &web, shell("root"), &ctx()).allowed);
}

#[test]
fn policies_scoped_to_other_principals_do_not_apply() {
    let (_dir, authz) = engine_with(&[(
        "scoped.cedar",
        r#"permit (principal == Vestibule::User::"bob", action, resource);
           permit (principal in Vestibule::Role::"dba", action, resource) when { context.login == "postgres" };
           forbid (principal in Vestibule::Group::"contractors", action, resource);"#,
    )]);
    let web = target("web1", &[]);
    assert!(
        !authz
            .explain(&alice(vec![]), &web, shell("root"), &ctx())
            .allowed
    );
    let bob = Subject::new("bob", vec![]);
    assert!(authz.explain(&bob, &web, shell("root"), &ctx()).allowed);
    let dba = alice(vec![role("dba", "db1", &[], false)]);
    let verdict = authz.explain(&dba, &web, shell("postgres"), &ctx());
    assert_eq!(verdict.policy_ids, ["scoped.cedar#2"]);
    let mut contractor = Subject::new("bob", vec![]);
    contractor.groups.push("contractors".into());
    let verdict = authz.explain(&contractor, &web, shell("root"), &ctx());
    assert!(!verdict.allowed);
    assert_eq!(verdict.policy_ids, ["scoped.cedar#3"]);
}

#[test]
fn self_approval_can_be_forbidden_by_policy() {
    let (_dir, authz) = engine_with(&[(
        "jit.cedar",
        r#"permit (principal, action == Vestibule::Action::"request.approve", resource);
           forbid (principal, action == Vestibule::Action::"request.approve", resource)
           when { context has requester && context.requester == principal.name };"#,
    )]);
    let web = target("web1", &[]);
    let approve = |requester| Action::ApproveRequest {
        login: "root",
        requester,
        duration_secs: 3600,
    };
    assert!(
        authz
            .explain(&alice(vec![]), &web, approve("bob"), &ctx())
            .allowed
    );
    assert!(
        !authz
            .explain(&alice(vec![]), &web, approve("alice"), &ctx())
            .allowed
    );
}

#[test]
fn every_load_attempt_is_reported_to_the_observer() {
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.cedar");
    std::fs::write(
        &file,
        r#"permit (principal, action, resource) when { context.login == "root" };"#,
    )
    .unwrap();
    let engine = Arc::new(CedarEngine::open(PolicyDir::new(dir.path())).unwrap());
    let reports: Arc<Mutex<Vec<ReloadReport>>> = Arc::default();
    let sink = reports.clone();
    engine.observe_reloads(Arc::new(move |r: &ReloadReport| {
        sink.lock().unwrap().push(r.clone())
    }));
    let first = engine.in_force();
    assert_eq!((first.files, first.policies), (1, 1));
    assert_eq!(first.sha256.len(), 64);

    let authz = Authorizer::new(Box::new(engine.clone()));
    let who = alice(vec![]);
    let web = target("web1", &[]);
    std::fs::write(&file, "permit (principal, action, resource").unwrap();
    past_refresh();
    assert!(authz.explain(&who, &web, shell("root"), &ctx()).allowed);
    // Refused once, not at every decision.
    past_refresh();
    assert!(authz.explain(&who, &web, shell("root"), &ctx()).allowed);
    std::fs::write(
        &file,
        "permit (principal, action, resource) when { context.login == \"deploy\" };\nforbid (principal, action, resource) when { context.login == \"x\" };\n",
    )
    .unwrap();
    past_refresh();
    assert!(authz.explain(&who, &web, shell("deploy"), &ctx()).allowed);
    assert!(engine.reload().is_ok());

    let reports = reports.lock().unwrap().clone();
    let triggers: Vec<_> = reports.iter().map(|r| (r.trigger, r.succeeded())).collect();
    assert_eq!(
        triggers,
        [
            (ReloadTrigger::Startup, true),
            (ReloadTrigger::FileChange, false),
            (ReloadTrigger::FileChange, true),
            (ReloadTrigger::Signal, true),
        ]
    );
    let refused = &reports[1];
    assert_eq!(refused.in_force, first, "the previous set stays in force");
    let failure = refused.failure.as_ref().unwrap();
    assert!(failure.problems[0].line.is_some(), "{failure:?}");
    assert!(failure.problems[0].file.ends_with("all.cedar"));
    let loaded = &reports[2].in_force;
    assert_eq!(loaded.policies, 2);
    assert_ne!(loaded.sha256, first.sha256);
    assert_eq!(reports[3].in_force, *loaded);
}
