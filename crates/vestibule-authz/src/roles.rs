//! The role rules: a role grants the targets its selector covers, as its logins,
//! and port forwarding through them if it says so.

use vestibule_core::{Role, Target};

use crate::{Action, Decision, Denial, PolicyEngine, Subject};

/// Deny-by-default evaluation of the subject's roles.
pub struct RolePolicy;

impl RolePolicy {
    fn covering<'a>(subject: &'a Subject, target: &'a Target) -> impl Iterator<Item = &'a Role> {
        subject
            .roles
            .iter()
            .filter(move |role| role.targets.matches(target))
    }
}

impl PolicyEngine for RolePolicy {
    fn decide(&self, subject: &Subject, target: &Target, action: Action<'_>) -> Decision {
        let mut covering = Self::covering(subject, target).peekable();
        if covering.peek().is_none() {
            return Decision::Deny(Denial::TargetNotGranted {
                person: subject.person.clone(),
                target: target.name.clone(),
            });
        }
        let allowing = match action {
            Action::Session { login } => covering.find(|r| r.logins.iter().any(|l| l == login)),
            Action::PortForward { .. } => covering.find(|r| r.allow_port_forwarding),
        };
        match (allowing, action) {
            (Some(role), _) => Decision::Allow {
                because: format!("role:{}", role.name),
            },
            (None, Action::Session { login }) => Decision::Deny(Denial::LoginNotGranted {
                person: subject.person.clone(),
                target: target.name.clone(),
                login: login.to_owned(),
            }),
            (None, Action::PortForward { .. }) => {
                Decision::Deny(Denial::PortForwardingNotGranted {
                    person: subject.person.clone(),
                    target: target.name.clone(),
                })
            }
        }
    }

    fn allowed_logins(&self, subject: &Subject, target: &Target) -> Vec<String> {
        let mut logins: Vec<String> = Self::covering(subject, target)
            .flat_map(|role| role.logins.iter().cloned())
            .collect();
        logins.sort();
        logins.dedup();
        logins
    }
}

#[cfg(test)]
mod tests {
    use vestibule_core::{HostKeyPolicy, Label, Selector};

    use crate::Authorizer;

    use super::*;

    fn target(name: &str, label: &str) -> Target {
        Target {
            name: name.into(),
            host: "10.0.0.1".into(),
            port: 22,
            default_login: None,
            labels: vec![Label::parse(label).unwrap()],
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
        }
    }

    fn alice(roles: Vec<Role>) -> Subject {
        Subject {
            person: "alice".into(),
            roles,
        }
    }

    #[test]
    fn deny_by_default() {
        let authz = Authorizer::roles();
        let err = authz
            .authorize_session(&alice(vec![]), &target("web1", "env=prod"), "root")
            .unwrap_err();
        assert_eq!(err.to_string(), "alice may not use target web1");
    }

    #[test]
    fn login_must_be_granted() {
        let authz = Authorizer::roles();
        let who = alice(vec![role("dev", "env=staging", &["deploy"], false)]);
        let web = target("web1", "env=staging");
        let grant = authz.authorize_session(&who, &web, "deploy").unwrap();
        assert_eq!((grant.login(), grant.because()), ("deploy", "role:dev"));
        assert!(!grant.may_forward_ports());
        let err = authz.authorize_session(&who, &web, "root").unwrap_err();
        assert_eq!(err.to_string(), "alice may not log in to web1 as root");
        let prod = target("db1", "env=prod");
        assert!(authz.authorize_session(&who, &prod, "deploy").is_err());
    }

    #[test]
    fn forwarding_needs_a_role_that_allows_it() {
        let authz = Authorizer::roles();
        let web = target("web1", "env=staging");
        let who = alice(vec![role("dev", "*", &["deploy"], false)]);
        let session = authz.authorize_session(&who, &web, "deploy").unwrap();
        let err = authz
            .authorize_forward(&who, &session, "localhost", 80)
            .unwrap_err();
        assert_eq!(err.to_string(), "alice may not forward ports through web1");
        let who = alice(vec![
            role("dev", "*", &["deploy"], false),
            role("tunnels", "web1", &[], true),
        ]);
        let fwd = authz
            .authorize_forward(&who, &session, "localhost", 80)
            .unwrap();
        assert_eq!((fwd.port(), fwd.because()), (80, "role:tunnels"));
    }

    #[test]
    fn allowed_logins_merge_roles() {
        let who = alice(vec![
            role("a", "*", &["root", "deploy"], false),
            role("b", "web1", &["deploy", "www"], false),
            role("c", "db1", &["postgres"], false),
        ]);
        let logins = RolePolicy.allowed_logins(&who, &target("web1", "env=x"));
        assert_eq!(logins, ["deploy", "root", "www"]);
    }
}
