//! The user names people type into `ssh`: `alice`, `alice:web1`, `alice#web1`,
//! `alice+web1`, and with a login `alice:root@web1`, `alice#root@web1`, `alice+root@web1`.

use crate::NameError;

/// What a connecting person asked for through the SSH user name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRequest {
    /// The person (the gateway account) to authenticate as.
    pub person: String,
    /// The target named in the user name, if any.
    pub target: Option<String>,
    /// The login on the target named in the user name, if any.
    pub login: Option<String>,
}

impl ConnectionRequest {
    /// Parse an SSH user name. `:`, `#` and `+` are interchangeable separators
    /// between the person and the target: `:` reads best with ssh, `#` exists because
    /// scp and rsync split arguments at `:`, and `+` because scp refuses `#` in the
    /// user name of a download source.
    /// A target part of the form `LOGIN@TARGET` names the login as well.
    pub fn parse(ssh_user: &str) -> Result<Self, NameError> {
        let (person, rest) = match ssh_user.find([':', '#', '+']) {
            Some(at) => (&ssh_user[..at], Some(&ssh_user[at + 1..])),
            None => (ssh_user, None),
        };
        validate_name("user", person)?;
        let (login, target) = match rest {
            None => (None, None),
            Some(rest) => match rest.rsplit_once('@') {
                Some((login, target)) => (Some(login), Some(target)),
                None => (None, Some(rest)),
            },
        };
        if let Some(target) = target {
            validate_name("target", target)?;
        }
        if let Some(login) = login {
            validate_login(login)?;
        }
        Ok(Self {
            person: person.to_owned(),
            target: target.map(str::to_owned),
            login: login.map(str::to_owned),
        })
    }
}

/// Names of users, targets and roles: 1 to 64 characters of ASCII letters, digits,
/// `.`, `_` and `-`, starting with a letter or digit. This keeps them safe in user
/// names, file names, log lines and shell prompts.
pub fn validate_name(kind: &'static str, name: &str) -> Result<(), NameError> {
    let rule = if name.is_empty() || name.len() > 64 {
        Some("must be 1 to 64 characters long")
    } else if !name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
    {
        Some("must start with a letter or digit")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        Some("may contain only letters, digits, '.', '_' and '-'")
    } else {
        None
    };
    match rule {
        Some(rule) => Err(NameError {
            kind,
            name: name.to_owned(),
            rule,
        }),
        None => Ok(()),
    }
}

/// Logins on targets follow POSIX user-name rules loosely: like [`validate_name`]
/// but up to 32 characters, as `useradd` allows.
pub fn validate_login(login: &str) -> Result<(), NameError> {
    validate_name("login", login)?;
    if login.len() > 32 {
        return Err(NameError {
            kind: "login",
            name: login.to_owned(),
            rule: "must be at most 32 characters long",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> (String, Option<String>, Option<String>) {
        let r = ConnectionRequest::parse(s).unwrap();
        (r.person, r.target, r.login)
    }

    #[test]
    fn plain_person() {
        assert_eq!(parse("alice"), ("alice".into(), None, None));
    }

    #[test]
    fn both_separators_name_a_target() {
        assert_eq!(parse("alice:web1").1.as_deref(), Some("web1"));
        assert_eq!(parse("alice#web1").1.as_deref(), Some("web1"));
        assert_eq!(parse("alice+web1").1.as_deref(), Some("web1"));
    }

    #[test]
    fn login_at_target() {
        assert_eq!(
            parse("alice#root@web1"),
            ("alice".into(), Some("web1".into()), Some("root".into()))
        );
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            ":web1",
            "alice:",
            "al ice",
            "alice:we b",
            "alice:@web1",
            "-x",
            "alice:a@",
        ] {
            assert!(ConnectionRequest::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn name_rules() {
        assert!(validate_name("user", "a.b_c-1").is_ok());
        assert!(validate_name("user", &"a".repeat(65)).is_err());
        assert!(validate_name("user", "é").is_err());
        assert!(validate_login(&"a".repeat(33)).is_err());
    }
}
