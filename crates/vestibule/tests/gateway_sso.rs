//! End-to-end: OpenID Connect single sign-on against a real provider
//! (`oidc-provider` from npm, installed by scripts/oidc-provider.sh and run
//! from tests/oidc/provider.mjs). The browser is scripted over HTTP: the
//! gateway's /auth/login, the provider's login and consent forms, the
//! gateway's /auth/callback. Also `vestibule login --sso`, an IdP outage, and
//! the id_token's `amr` deciding whether a sign-on is multi-factor. The
//! harness is in `sso_harness/`.

mod common;
mod sso_harness;

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{COMMAND_TIMEOUT, run, tail_of, temp_dir};
use reqwest::Url;
use sso_harness::*;

#[test]
fn web_login_maps_groups_to_roles_and_refuses_bad_state_and_nonce() {
    let Some(dir) = provider_dir() else { return };
    let s = SsoWorld::start(&dir);

    // alice (group ops at the IdP) logs in; her mapped role is granted.
    let mut browser = Browser::new();
    let page = browser.sso(s.url("/auth/login"), "alice", s.idp, &no_tamper);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Signed in to Vestibule as alice"),
        "{}",
        page.body
    );
    let roles = s.roles_of("alice");
    assert!(roles.contains(&"sso-ops".to_owned()), "{roles:?}");
    assert!(
        roles.contains(&"ops".to_owned()),
        "a role granted by hand stays: {roles:?}"
    );
    assert!(!roles.contains(&"sso-dev".to_owned()), "{roles:?}");

    // The callback cannot be replayed, even with its state cookie.
    let callback = page.callback.expect("the callback was visited");
    let state = callback
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    browser
        .cookies
        .entry(Browser::origin(&callback))
        .or_default()
        .insert("__Host-vestibule-sso".into(), state);
    let replay = browser.navigate(callback, None, &no_tamper);
    assert_eq!(replay.status, 400, "{}", replay.body);
    assert!(
        replay.body.contains("unknown, expired or already used"),
        "{}",
        replay.body
    );

    // A made-up state (and no cookie) is refused.
    let mut stranger = Browser::new();
    let bogus = stranger.navigate(
        s.url("/auth/callback?state=made-up&code=made-up"),
        None,
        &no_tamper,
    );
    assert_eq!(bogus.status, 400, "{}", bogus.body);

    // A login whose nonce was changed on its way to the IdP is refused.
    let mut tampered = Browser::new();
    let tamper = |mut url: Url| {
        if url.path() == "/auth" && url.query_pairs().any(|(k, _)| k == "nonce") {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k == "nonce" {
                        "forged-nonce".into()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        url
    };
    let page = tampered.sso(s.url("/auth/login"), "alice", s.idp, &tamper);
    assert_eq!(page.status, 401, "{}", page.body);
    assert!(page.body.contains("nonce"), "{}", page.body);

    // bob is not a user yet: auto-provisioned, with his group's role.
    let page = Browser::new().sso(s.url("/auth/login"), "bob", s.idp, &no_tamper);
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(s.roles_of("bob"), vec!["sso-dev".to_owned()]);

    // A group change at the IdP takes effect at the next login.
    let set = Url::parse(&format!(
        "http://127.0.0.1:{}/test/set-groups?user=alice&groups=dev",
        s.idp
    ))
    .expect("url");
    assert_eq!(Browser::new().send(&set, None).0, 200);
    let page = Browser::new().sso(s.url("/auth/login"), "alice", s.idp, &no_tamper);
    assert_eq!(page.status, 200, "{}", page.body);
    let roles = s.roles_of("alice");
    assert!(roles.contains(&"sso-dev".to_owned()), "{roles:?}");
    assert!(!roles.contains(&"sso-ops".to_owned()), "{roles:?}");
    assert!(roles.contains(&"ops".to_owned()), "{roles:?}");

    // Secrets never reach the gateway log.
    let log = fs::read_to_string(s.logs.path().join("serve.stderr")).unwrap_or_default();
    assert!(log.contains("single sign-on succeeded"), "{log}");
    assert!(!log.contains(CLIENT_SECRET), "{log}");
}

#[test]
fn cli_login_by_sso_then_an_idp_outage_names_break_glass() {
    let Some(dir) = provider_dir() else { return };
    let mut s = SsoWorld::start(&dir);
    let home = temp_dir();

    // `vestibule login --sso` waits while the test completes the browser side.
    let (mut cli, out) = spawn_cli_login(&s, home.path(), "alice");
    let link = link_of(&out);
    assert!(link.path().starts_with("/auth/approve/"), "{link}");
    let page = Browser::new().sso(link, "alice", s.idp, &no_tamper);
    assert_eq!(page.status, 200, "{}", page.body);
    let status = cli
        .wait_timeout(COMMAND_TIMEOUT)
        .expect("the login finishes");
    assert!(
        status.success(),
        "{}",
        tail_of(&home.path().join("login-alice.stderr"), 4000)
    );
    let key = common::login_key(home.path());
    let cert = fs::read_to_string(format!("{}-cert.pub", key.display())).expect("certificate");
    assert!(
        cert.starts_with("ssh-ed25519-cert-v01@openssh.com "),
        "{cert}"
    );
    let ok = common::ssh_with_key(s.ssh, &key, "alice:web1", "echo sso-ok");
    assert!(ok.success() && ok.stdout_str().contains("sso-ok"), "{ok}");

    // Completing the link as someone else gives no certificate.
    let other_home = temp_dir();
    let (mut cli, out) = spawn_cli_login(&s, other_home.path(), "alice");
    let page = Browser::new().sso(link_of(&out), "bob", s.idp, &no_tamper);
    assert_eq!(page.status, 403, "{}", page.body);
    let status = cli
        .wait_timeout(COMMAND_TIMEOUT)
        .expect("the login finishes");
    assert!(!status.success());
    let stderr = tail_of(&other_home.path().join("login-alice.stderr"), 4000);
    assert!(stderr.contains("completed as bob"), "{stderr}");

    // The IdP goes down: SSO fails fast with a message naming break-glass...
    if let Some(mut provider) = s.provider.take() {
        provider.kill();
    }
    let started = Instant::now();
    let page = Browser::new().navigate(s.url("/auth/login"), None, &no_tamper);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(
        page.body.contains("single sign-on is unavailable"),
        "{}",
        page.body
    );
    assert!(page.body.contains("vestibule breakglass"), "{}", page.body);
    let started = Instant::now();
    let (mut cli, _out) = spawn_cli_login(&s, other_home.path(), "alice");
    let status = cli
        .wait_timeout(COMMAND_TIMEOUT)
        .expect("the login finishes");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(!status.success());
    let stderr = tail_of(&other_home.path().join("login-alice.stderr"), 4000);
    assert!(stderr.contains("break-glass"), "{stderr}");

    // ...and the certificate already issued keeps working until it expires.
    let ok = common::ssh_with_key(s.ssh, &key, "alice:web1", "echo still-ok");
    assert!(ok.success() && ok.stdout_str().contains("still-ok"), "{ok}");
}

#[test]
fn ssh_login_by_sso_goes_on_once_the_browser_side_completes() {
    let Some(dir) = provider_dir() else { return };
    let mut s = SsoWorld::start(&dir);
    let home = temp_dir();
    let (line, mut ssh, out) = ssh_by_sso(&s, home.path(), "echo sso-ssh-ok");
    let link = ssh_link(&out, home.path());
    let page = Browser::new().sso(link, "alice", s.idp, &no_tamper);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        wait_line(&out, "sso-ssh-ok", COMMAND_TIMEOUT).is_some(),
        "{}",
        tail_of(&home.path().join("ssh.stdout"), 4000)
    );
    let status = ssh.wait_timeout(COMMAND_TIMEOUT).expect("ssh ends");
    assert!(status.success());

    // With the IdP down, the SSH login fails at once and names break-glass.
    if let Some(mut provider) = s.provider.take() {
        provider.kill();
    }
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(line.replace("sso-ssh-ok", "never"));
    let started = Instant::now();
    let out = run(&mut cmd, COMMAND_TIMEOUT);
    assert!(!out.success(), "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let said = out.stdout_str();
    assert!(
        said.contains("single sign-on is unavailable") && said.contains("break"),
        "{said}"
    );
}

#[test]
fn a_multi_factor_sso_satisfies_require_mfa_and_a_single_factor_one_does_not() {
    let Some(dir) = provider_dir() else { return };
    let s = SsoWorld::start_with(&dir, true);
    let set_amr = |amr: &str| {
        let url = Url::parse(&format!(
            "http://127.0.0.1:{}/test/set-amr?user=alice&amr={amr}",
            s.idp
        ))
        .expect("url");
        assert_eq!(Browser::new().send(&url, None).0, 200);
    };
    // The IdP says a password and a one-time code: both factors.
    set_amr("pwd,otp");
    let home = temp_dir();
    let key = sso_cli_login(&s, home.path());
    let cert = fs::read_to_string(format!("{}-cert.pub", key.display())).expect("certificate");
    let inspected = run(
        Command::new("ssh-keygen")
            .args(["-L", "-f"])
            .arg(format!("{}-cert.pub", key.display())),
        COMMAND_TIMEOUT,
    );
    assert!(
        inspected.stdout_str().contains("vestibule:alice:sso+mfa"),
        "{cert}\n{inspected}"
    );
    let ok = common::ssh_with_key(s.ssh, &key, "alice:web1", "echo mfa-ok");
    assert!(ok.success() && ok.stdout_str().contains("mfa-ok"), "{ok}");

    // A password only: the certificate is one factor, so with require_mfa a
    // key-only (BatchMode) login cannot finish; the code is still due.
    set_amr("pwd");
    let home = temp_dir();
    let key = sso_cli_login(&s, home.path());
    let inspected = run(
        Command::new("ssh-keygen")
            .args(["-L", "-f"])
            .arg(format!("{}-cert.pub", key.display())),
        COMMAND_TIMEOUT,
    );
    assert!(
        inspected
            .stdout_str()
            .contains("Key ID: \"vestibule:alice:sso\""),
        "{inspected}"
    );
    common::ssh_with_key(s.ssh, &key, "alice:web1", "true").assert_auth_denied();

    // Over SSH the same: a multi-factor sign-on lets alice in...
    set_amr("pwd,otp");
    let home = temp_dir();
    let (_, mut ssh, out) = ssh_by_sso(&s, home.path(), "echo sso-mfa-ok");
    let page = Browser::new().sso(ssh_link(&out, home.path()), "alice", s.idp, &no_tamper);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        wait_line(&out, "sso-mfa-ok", COMMAND_TIMEOUT).is_some(),
        "{}",
        tail_of(&home.path().join("ssh.stdout"), 4000)
    );
    assert!(
        ssh.wait_timeout(COMMAND_TIMEOUT)
            .expect("ssh ends")
            .success()
    );
    let audited = common::wait_until(COMMAND_TIMEOUT, || {
        let out = s.w.gw.cli_ok(&[
            "audit",
            "search",
            "--type",
            "authentication.success",
            "--json",
        ]);
        out.stdout_str().contains("\"sso+mfa\"").then_some(())
    });
    assert!(audited.is_some(), "no authentication.success with sso+mfa");
    // ...and a single-factor one goes on to the second factor (alice has
    // none, so she is offered one; without a terminal ssh cannot answer).
    set_amr("pwd");
    let home = temp_dir();
    let (_, mut ssh, out) = ssh_by_sso(&s, home.path(), "echo never");
    let page = Browser::new().sso(ssh_link(&out, home.path()), "alice", s.idp, &no_tamper);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        wait_line(&out, "otpauth://totp/Vestibule:alice", COMMAND_TIMEOUT).is_some(),
        "{}",
        tail_of(&home.path().join("ssh.stdout"), 4000)
    );
    assert!(
        !ssh.wait_timeout(COMMAND_TIMEOUT)
            .expect("ssh ends")
            .success()
    );
    let said = fs::read_to_string(home.path().join("ssh.stdout")).unwrap_or_default();
    assert!(!said.contains("never"), "{said}");
}
