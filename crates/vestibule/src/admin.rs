//! The admin commands: users, targets, roles, and the gateway key.

use std::io::BufRead;

use anyhow::{Context, Result, bail};
use russh::keys::PublicKey;
use serde::Serialize;
use vestibule_core::{
    HostKeyPolicy, Label, Role, Selector, Target, TargetCredential, validate_login, validate_name,
};
use vestibule_store::Store;

use crate::cli::{ListArgs, RoleCommand, TargetCommand, UserCommand};
use crate::datadir::DataDir;

pub async fn store(dir: &DataDir) -> Result<Store> {
    let config = dir.load_config()?;
    dir.open_store(&config).await
}

pub fn gateway_key(dir: &DataDir) -> Result<()> {
    let config = dir.load_config()?;
    let key = dir.load_key(&config.ssh.client_key)?;
    let line = key
        .public_key()
        .to_openssh()
        .context("cannot encode the gateway key")?;
    println!("{line}");
    Ok(())
}

/// Read one OpenSSH public key per non-comment line of `path`.
fn read_public_keys(path: &std::path::Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let keys = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let key = PublicKey::from_openssh(line).with_context(|| {
                format!("{} does not hold an OpenSSH public key", path.display())
            })?;
            if matches!(key.algorithm(), russh::keys::Algorithm::Dsa) {
                bail!("{}: DSA keys are not accepted", path.display());
            }
            key.to_openssh().context("cannot encode public key")
        })
        .collect::<Result<Vec<_>>>()?;
    if keys.is_empty() {
        bail!("{} holds no public key", path.display());
    }
    Ok(keys)
}

/// Host CA keys from a file of public key lines or `@cert-authority` lines.
fn read_host_ca_keys(path: &std::path::Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut keys = Vec::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let key_part = match line.strip_prefix("@cert-authority") {
            Some(rest) => rest
                .trim_start()
                .split_once(char::is_whitespace)
                .map_or("", |(_, key)| key),
            None => line,
        };
        let key = PublicKey::from_openssh(key_part.trim())
            .with_context(|| format!("{}: {line:?} is not a CA public key", path.display()))?;
        keys.push(key.to_openssh().context("cannot encode CA key")?);
    }
    if keys.is_empty() {
        bail!("{} holds no CA public key", path.display());
    }
    Ok(keys)
}

fn read_password_stdin() -> Result<zeroize::Zeroizing<String>> {
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned());
    if password.is_empty() {
        bail!("empty password on standard input");
    }
    Ok(password)
}

pub async fn user(dir: &DataDir, command: UserCommand) -> Result<()> {
    match command {
        UserCommand::Add {
            name,
            public_keys,
            password_stdin,
        } => {
            validate_name("user", &name)?;
            let mut keys = Vec::new();
            for path in &public_keys {
                keys.extend(read_public_keys(path)?);
            }
            let hash = if password_stdin {
                let password = read_password_stdin()?;
                Some(vestibule_identity::hash_password(&password)?)
            } else {
                None
            };
            if keys.is_empty() && hash.is_none() {
                eprintln!("note: {name} has no key and no password yet, so cannot log in");
            }
            store(dir)
                .await?
                .add_user(&name, &keys, hash.as_deref())
                .await?;
            println!("Added user {name}");
        }
        UserCommand::List(args) => {
            let users = store(dir).await?.list_users().await?;
            print_list(&args, &users, |u| {
                vec![
                    u.name.clone(),
                    format!("{} key(s)", u.public_keys.len()),
                    if u.has_password { "password" } else { "-" }.into(),
                    u.roles.join(","),
                ]
            })?;
        }
        UserCommand::Remove { name } => {
            store(dir).await?.remove_user(&name).await?;
            println!("Removed user {name}");
        }
        UserCommand::Mfa(command) => crate::identity::mfa(dir, command).await?,
    }
    Ok(())
}

pub async fn target(dir: &DataDir, command: TargetCommand) -> Result<()> {
    match command {
        TargetCommand::Add {
            name,
            host,
            port,
            login,
            labels,
            host_key,
            trust_on_first_use,
            host_ca,
            global_host_ca,
            static_key,
        } => {
            validate_name("target", &name)?;
            if host.is_empty() || host.contains(char::is_whitespace) {
                bail!("invalid host {host:?}");
            }
            if port == 0 {
                bail!("port must be between 1 and 65535");
            }
            if let Some(login) = &login {
                validate_login(login)?;
            }
            let labels = labels
                .iter()
                .map(|l| Label::parse(l))
                .collect::<Result<Vec<_>, _>>()?;
            let host_key = match (host_key, trust_on_first_use) {
                // An empty list means the gateway-wide one.
                _ if global_host_ca => HostKeyPolicy::CertifiedBy {
                    ca_keys: Vec::new(),
                },
                _ if host_ca.is_some() => HostKeyPolicy::CertifiedBy {
                    ca_keys: host_ca
                        .as_deref()
                        .map(read_host_ca_keys)
                        .transpose()?
                        .unwrap_or_default(),
                },
                (Some(line), false) => {
                    let key = PublicKey::from_openssh(line.trim()).with_context(|| {
                        format!("--host-key {line:?} is not an OpenSSH public key")
                    })?;
                    HostKeyPolicy::Pinned {
                        key: key.to_openssh().context("cannot encode host key")?,
                    }
                }
                (None, true) => HostKeyPolicy::TrustOnFirstUse { recorded: None },
                _ => bail!("give exactly one of --host-key, --trust-on-first-use and --host-ca"),
            };
            let target = Target {
                name: name.clone(),
                host,
                port,
                default_login: login,
                labels,
                host_key,
                credential: if static_key {
                    TargetCredential::StaticKey
                } else {
                    TargetCredential::Certificate
                },
            };
            store(dir).await?.add_target(&target).await?;
            println!("Added target {name}");
        }
        TargetCommand::List(args) => {
            let targets = store(dir).await?.list_targets().await?;
            print_list(&args, &targets, |t| {
                let labels: Vec<String> = t.labels.iter().map(Label::to_string).collect();
                let key = match &t.host_key {
                    HostKeyPolicy::Pinned { .. } => "pinned",
                    HostKeyPolicy::TrustOnFirstUse { recorded: Some(_) } => "recorded at first use",
                    HostKeyPolicy::TrustOnFirstUse { recorded: None } => "trust on first use",
                    HostKeyPolicy::CertifiedBy { ca_keys } if ca_keys.is_empty() => {
                        "global host CA list"
                    }
                    HostKeyPolicy::CertifiedBy { .. } => "host CA",
                };
                vec![
                    t.name.clone(),
                    format!("{}:{}", t.host, t.port),
                    t.default_login.clone().unwrap_or_else(|| "-".into()),
                    labels.join(","),
                    key.into(),
                    t.credential.as_str().into(),
                ]
            })?;
        }
        TargetCommand::Remove { name } => {
            store(dir).await?.remove_target(&name).await?;
            println!("Removed target {name}");
        }
    }
    Ok(())
}

pub async fn role(dir: &DataDir, command: RoleCommand) -> Result<()> {
    match command {
        RoleCommand::Add {
            name,
            targets,
            logins,
            allow_port_forwarding,
            require_mfa,
        } => {
            validate_name("role", &name)?;
            let logins: Vec<String> = logins.iter().map(|l| l.trim().to_owned()).collect();
            for login in &logins {
                validate_login(login)?;
            }
            let role = Role {
                name: name.clone(),
                targets: Selector::parse(&targets)?,
                logins,
                allow_port_forwarding,
                require_mfa,
            };
            store(dir).await?.add_role(&role).await?;
            println!("Added role {name}");
        }
        RoleCommand::Grant { role, user } => {
            store(dir).await?.grant_role(&role, &user).await?;
            println!("Granted role {role} to {user}");
        }
        RoleCommand::Revoke { role, user } => {
            store(dir).await?.revoke_role(&role, &user).await?;
            println!("Revoked role {role} from {user}");
        }
        RoleCommand::List(args) => {
            let roles = store(dir).await?.list_roles().await?;
            print_list(&args, &roles, |r| {
                vec![
                    r.name.clone(),
                    r.targets.clone(),
                    r.logins.join(","),
                    match (r.allow_port_forwarding, r.require_mfa) {
                        (true, true) => "port-forwarding,mfa",
                        (true, false) => "port-forwarding",
                        (false, true) => "mfa",
                        (false, false) => "-",
                    }
                    .into(),
                    r.granted_to.join(","),
                ]
            })?;
        }
        RoleCommand::Remove { name } => {
            store(dir).await?.remove_role(&name).await?;
            println!("Removed role {name}");
        }
    }
    Ok(())
}

/// Print items as JSON or as aligned columns.
pub fn print_list<T: Serialize>(
    args: &ListArgs,
    items: &[T],
    row: impl Fn(&T) -> Vec<String>,
) -> Result<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(items)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = items.iter().map(row).collect();
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
    Ok(())
}
