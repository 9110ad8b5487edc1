//! `vestibule policy`: validate the policy files, explain a decision, print the
//! schema and the policies roles stand for.

use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use vestibule_authz::{
    Action, Authorizer, CedarEngine, GrantContext, PolicyDir, PolicyError, RequestContext,
    SessionKind, Subject,
};

use crate::admin;
use crate::cli::PolicyCommand;
use crate::datadir::DataDir;

pub async fn run(dir: &DataDir, command: PolicyCommand) -> Result<()> {
    match command {
        PolicyCommand::Check => check(dir),
        PolicyCommand::Schema => {
            print!("{}", vestibule_authz::SCHEMA);
            Ok(())
        }
        PolicyCommand::Roles => {
            let store = admin::store(dir).await?;
            for record in store.list_roles().await? {
                let role = vestibule_core::Role {
                    targets: vestibule_core::Selector::parse(&record.targets)?,
                    name: record.name,
                    logins: record.logins,
                    allow_port_forwarding: record.allow_port_forwarding,
                    require_mfa: record.require_mfa,
                };
                println!("{}", vestibule_authz::role_policy(&role));
            }
            Ok(())
        }
        PolicyCommand::Explain {
            user,
            target,
            login,
            action,
            context,
            json,
        } => {
            let authorizer = open_authorizer(dir)?;
            let store = admin::store(dir).await?;
            let target = store
                .target(&target)
                .await?
                .with_context(|| format!("no target named {target}"))?;
            let subject = Subject::new(user.clone(), store.roles_of(&user).await?);
            let mut values = ContextValues::parse(&context)?;
            let request_context = values.request_context();
            let action = values.action(&action, &login)?;
            let verdict = authorizer.explain(&subject, &target, action, &request_context);
            if json {
                let out = serde_json::json!({
                    "decision": if verdict.allowed { "allow" } else { "deny" },
                    "policies": verdict.policy_ids,
                    "reasons": verdict.reasons,
                    "errors": verdict.errors,
                });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                let decision = if verdict.allowed { "ALLOW" } else { "DENY" };
                println!(
                    "{decision}: {user} {} on {} as {login}",
                    action.name(),
                    target.name
                );
                if verdict.policy_ids.is_empty() {
                    println!("  decided by: no policy applies (deny by default)");
                } else {
                    println!("  decided by: {}", verdict.policy_ids.join(", "));
                }
                for reason in &verdict.reasons {
                    println!("  reason: {reason}");
                }
                for error in &verdict.errors {
                    println!("  not evaluated: {error}");
                }
            }
            Ok(())
        }
    }
}

/// The authorizer over the data dir's policies, refusing a set with problems.
pub fn open_authorizer(dir: &DataDir) -> Result<Authorizer> {
    let engine = CedarEngine::open(PolicyDir::new(dir.policies_dir())).map_err(report)?;
    Ok(Authorizer::new(Box::new(engine)))
}

fn check(dir: &DataDir) -> Result<()> {
    let policies = PolicyDir::new(dir.policies_dir());
    let info = CedarEngine::check(&policies).map_err(report)?;
    println!(
        "{}: {} policies in {} files, valid",
        policies.path().display(),
        info.policies,
        info.files
    );
    Ok(())
}

fn report(error: PolicyError) -> anyhow::Error {
    match error {
        PolicyError::Invalid { problems } => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            anyhow::anyhow!("{} problem(s) in the policy files", problems.len())
        }
        other => other.into(),
    }
}

/// `--context key=value` pairs.
#[derive(Default)]
struct ContextValues {
    context: Option<RequestContext>,
    command: String,
    destination: (String, u16),
    requester: String,
}

impl ContextValues {
    fn parse(pairs: &[String]) -> Result<Self> {
        let mut context = RequestContext::now("publickey");
        let mut values = Self::default();
        for pair in pairs {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("--context {pair:?}: write KEY=VALUE"))?;
            match key {
                "source_ip" => {
                    let ip: IpAddr = value.parse().with_context(|| {
                        format!("--context source_ip: {value:?} is not an IP address")
                    })?;
                    context.source_ip = Some(ip);
                }
                "ticket" => context.ticket = Some(value.to_owned()),
                "auth_method" => context.auth_method = value.to_owned(),
                "mfa" => context.mfa = parse_bool(key, value)?,
                "break_glass" => context.break_glass = parse_bool(key, value)?,
                "time" => context.now = parse_time(value)?,
                "command" => values.command = value.to_owned(),
                "requester" => values.requester = value.to_owned(),
                "grant" => {
                    context.grant = Some(GrantContext {
                        id: value.to_owned(),
                        expires_unix: i64::MAX,
                    })
                }
                "destination" => {
                    let (host, port) = value
                        .rsplit_once(':')
                        .context("--context destination: write HOST:PORT")?;
                    let port = port
                        .parse()
                        .with_context(|| format!("--context destination: bad port {port:?}"))?;
                    values.destination = (host.to_owned(), port);
                }
                other => bail!(
                    "unknown context key {other:?} (known: source_ip, ticket, auth_method, mfa, break_glass, time, command, grant, destination, requester)"
                ),
            }
        }
        values.context = Some(context);
        Ok(values)
    }

    fn request_context(&mut self) -> RequestContext {
        self.context
            .take()
            .unwrap_or_else(|| RequestContext::now("publickey"))
    }

    fn action<'a>(&'a self, name: &str, login: &'a str) -> Result<Action<'a>> {
        Ok(match name {
            "ssh.shell" => Action::Session {
                login,
                kind: SessionKind::Shell,
            },
            "ssh.exec" => Action::Session {
                login,
                kind: SessionKind::Exec {
                    command: &self.command,
                },
            },
            "ssh.sftp" => Action::Session {
                login,
                kind: SessionKind::Sftp,
            },
            "ssh.port_forward" => Action::PortForward {
                login,
                host: &self.destination.0,
                port: self.destination.1,
            },
            "request.create" => Action::RequestAccess {
                login,
                duration_secs: 3600,
            },
            "request.approve" => Action::ApproveRequest {
                login,
                requester: &self.requester,
                duration_secs: 3600,
            },
            other => bail!(
                "unknown action {other:?} (known: ssh.shell, ssh.exec, ssh.sftp, ssh.port_forward, request.create, request.approve)"
            ),
        })
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    value
        .parse()
        .with_context(|| format!("--context {key}: {value:?} is not true or false"))
}

/// `YYYY-MM-DDTHH:MM[:SS]Z` (UTC), or Unix seconds.
fn parse_time(value: &str) -> Result<std::time::SystemTime> {
    if let Ok(unix) = value.parse::<u64>() {
        return Ok(UNIX_EPOCH + Duration::from_secs(unix));
    }
    let bad = || anyhow::anyhow!("--context time: {value:?} is not YYYY-MM-DDTHH:MM:SSZ");
    let text = value.strip_suffix('Z').ok_or_else(bad)?;
    let (date, time) = text.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let t: Vec<i64> = time
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let (&[y, m, day], [h, min, rest @ ..]) = (d.as_slice(), t.as_slice()) else {
        return Err(bad());
    };
    let s = rest.first().copied().unwrap_or(0);
    // Days from civil (proleptic Gregorian).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let unix = days * 86_400 + h * 3600 + min * 60 + s;
    let unix = u64::try_from(unix).map_err(|_| bad())?;
    Ok(UNIX_EPOCH + Duration::from_secs(unix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse() {
        let at = parse_time("2026-11-28T12:00:00Z").unwrap();
        assert_eq!(
            at.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_795_867_200
        );
        assert!(parse_time("yesterday").is_err());
    }
}
