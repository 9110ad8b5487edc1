//! `vestibule ca` and `vestibule ssh-config`.

use anyhow::{Context, Result, bail};
use vestibule_ca::{CaDirectory, CaKind};

use crate::admin::store;
use crate::cli::{CaCommand, CaKindArg, SshConfigArgs};
use crate::datadir::DataDir;

impl From<CaKindArg> for CaKind {
    fn from(kind: CaKindArg) -> Self {
        match kind {
            CaKindArg::User => CaKind::User,
            CaKindArg::Host => CaKind::Host,
        }
    }
}

fn directory(dir: &DataDir, kind: CaKind) -> Result<CaDirectory> {
    dir.load_config()?;
    dir.ensure_cas()?;
    Ok(CaDirectory::new(&dir.ca_root(), kind))
}

/// The known_hosts lines that trust the host CA for every host.
fn known_hosts_lines(dir: &DataDir) -> Result<Vec<String>> {
    let keys = directory(dir, CaKind::Host)?.load()?.export()?;
    Ok(keys
        .iter()
        .map(|key| format!("@cert-authority * {key}"))
        .collect())
}

pub async fn run(dir: &DataDir, command: CaCommand) -> Result<()> {
    match command {
        CaCommand::Issued { limit, list } => {
            let issued = store(dir).await?.recent_certificates(limit).await?;
            crate::admin::print_list(&list, &issued, |c| {
                vec![
                    c.serial.to_string(),
                    c.kind.clone(),
                    c.key_id.clone(),
                    c.principals.join(","),
                    format!("{}..{}", c.valid_after, c.valid_before),
                ]
            })?;
        }
        CaCommand::Revoke { serial, reason } => {
            if reason.trim().is_empty() {
                bail!("give a --reason");
            }
            store(dir)
                .await?
                .revoke_certificate(serial, reason.trim())
                .await?;
            println!("Revoked certificate serial {serial}");
        }
        CaCommand::Export { kind, known_hosts } => {
            let kind = CaKind::from(kind);
            let lines = match (kind, known_hosts) {
                (CaKind::Host, true) => known_hosts_lines(dir)?,
                (CaKind::User, true) => bail!("--known-hosts is for the host CA"),
                (kind, false) => directory(dir, kind)?.load()?.export()?,
            };
            for line in lines {
                println!("{line}");
            }
        }
        CaCommand::Rotate { kind, finish } => {
            let every_ca = kind.is_none();
            let kinds = match kind {
                Some(kind) => vec![CaKind::from(kind)],
                None => vec![CaKind::User, CaKind::Host],
            };
            for kind in kinds {
                let ca = directory(dir, kind)?;
                if !finish {
                    let key = ca.rotate()?;
                    println!(
                        "Started rotating the {kind} CA: new key {} signs from now on; the old key stays trusted.",
                        key.fingerprint(Default::default())
                    );
                    println!(
                        "Distribute `vestibule ca export {kind}`, then run `vestibule ca rotate {kind} --finish`."
                    );
                    continue;
                }
                match ca.finish_rotation() {
                    Ok(retired) => {
                        for key in retired {
                            println!(
                                "The {kind} CA no longer trusts {}",
                                key.fingerprint(Default::default())
                            );
                        }
                    }
                    // Finishing every CA skips those not being rotated.
                    Err(vestibule_ca::CaError::Rotation { count: 1, .. }) if every_ca => {}
                    Err(error) => return Err(error.into()),
                }
            }
        }
    }
    Ok(())
}

pub async fn ssh_config(dir: &DataDir, args: SshConfigArgs) -> Result<()> {
    let config = dir.load_config()?;
    let port = args.port.unwrap_or(config.ssh.listen.port());
    let targets = store(dir)
        .await?
        .list_targets()
        .await
        .context("cannot list targets")?;
    let host = &args.host;
    let known = &args.known_hosts;
    println!("# Vestibule: reach targets through the gateway at {host}:{port}.");
    println!("# Put the output of `vestibule ca export host --known-hosts` in {known}.");
    println!("Host {host}");
    println!("    Port {port}");
    if let Some(user) = &args.user {
        println!("    User {user}");
    }
    println!("    UserKnownHostsFile {known}");
    println!("    StrictHostKeyChecking yes");
    if !targets.is_empty() {
        let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        println!();
        println!("Host {}", names.join(" "));
        println!("    ProxyJump {host}");
        println!("    UserKnownHostsFile {known}");
        println!("    StrictHostKeyChecking yes");
    }
    Ok(())
}
