//! `vestibule user mfa` and `vestibule breakglass`: second factors and
//! emergency tokens.

use anyhow::{Context, Result};
use vestibule_identity::{breakglass as tokens, mfa, totp};

use crate::admin::{print_list, store};
use crate::cli::{BreakglassCommand, MfaCommand};
use crate::datadir::DataDir;

pub async fn mfa(dir: &DataDir, command: MfaCommand) -> Result<()> {
    let store = store(dir).await?;
    match command {
        MfaCommand::Enroll { name } => {
            let secret = zeroize::Zeroizing::new(totp::generate_secret());
            store.set_mfa(&name, &secret).await?;
            let uri = zeroize::Zeroizing::new(totp::otpauth_uri(mfa::ISSUER, &name, &secret));
            println!("Enrolled {name} for TOTP. Scan this with an authenticator app:");
            println!();
            match mfa::qr_text(&uri) {
                Some(code) => println!("{code}"),
                None => eprintln!("(cannot draw a QR code)"),
            }
            println!("{}", uri.as_str());
            println!();
            println!("Secret (to type in by hand): {}", secret.as_str());
            println!("From now on {name} is asked for a verification code after the first factor.");
        }
        MfaCommand::Remove { name } => {
            store.remove_mfa(&name).await?;
            println!("Removed the second factor of {name}");
        }
    }
    Ok(())
}

pub async fn breakglass(dir: &DataDir, command: BreakglassCommand) -> Result<()> {
    let store = store(dir).await?;
    match command {
        BreakglassCommand::Issue {
            account,
            ttl,
            reason,
        } => {
            let ttl = crate::login::parse_ttl(&ttl)?;
            let expires_at = unix_now().saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX));
            let token = tokens::generate_token();
            let id = store
                .issue_breakglass(
                    &account,
                    &tokens::hash_token(&token),
                    &reason,
                    &crate::outbox::operator(),
                    expires_at,
                )
                .await
                .context("cannot issue the token")?;
            println!("Break-glass token {id} for {account}, valid {ttl} s, usable once:");
            println!("{}", token.as_str());
            println!(
                "Log in with: ssh {account}@GATEWAY and give the token as the password. It is not shown again."
            );
        }
        BreakglassCommand::List(args) => {
            let tokens = store.list_breakglass().await?;
            print_list(&args, &tokens, |t| {
                vec![
                    t.id.clone(),
                    t.account.clone(),
                    format!("expires {}", t.expires_at),
                    t.used_at
                        .map_or_else(|| "unused".to_owned(), |at| format!("used {at}")),
                    t.created_by.clone(),
                    t.reason.clone(),
                ]
            })?;
        }
    }
    Ok(())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
