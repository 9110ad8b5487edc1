//! Target selectors: which targets a role covers.

use std::fmt;

use crate::{Label, Target, validate_name};

/// A set of targets, written as a comma-separated list of terms; a target is in the
/// set when any term matches it. A term is `*` (every target), a target name, or a
/// label match `key=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    terms: Vec<Term>,
}

/// One term of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// `*`
    Everything,
    /// A target's name.
    Name(String),
    /// `key=value`
    Label(Label),
}

/// Why a selector could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid target selector {text:?}: {reason}")]
pub struct SelectorError {
    pub text: String,
    pub reason: String,
}

impl Selector {
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let error = |reason: String| SelectorError {
            text: text.to_owned(),
            reason,
        };
        let mut terms = Vec::new();
        for raw in text.split(',') {
            let term = raw.trim();
            if term.is_empty() {
                return Err(error("empty term (use '*' for every target)".into()));
            }
            terms.push(if term == "*" {
                Term::Everything
            } else if term.contains('=') {
                Term::Label(Label::parse(term).map_err(|e| error(e.to_string()))?)
            } else {
                validate_name("target", term).map_err(|e| error(e.to_string()))?;
                Term::Name(term.to_owned())
            });
        }
        Ok(Self { terms })
    }

    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    pub fn matches(&self, target: &Target) -> bool {
        self.terms.iter().any(|term| match term {
            Term::Everything => true,
            Term::Name(name) => *name == target.name,
            Term::Label(label) => target.labels.contains(label),
        })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, term) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match term {
                Term::Everything => f.write_str("*")?,
                Term::Name(name) => f.write_str(name)?,
                Term::Label(label) => write!(f, "{label}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HostKeyPolicy;

    fn target(name: &str, labels: &[&str]) -> Target {
        Target {
            name: name.into(),
            host: "127.0.0.1".into(),
            port: 22,
            default_login: None,
            labels: labels.iter().map(|l| Label::parse(l).unwrap()).collect(),
            host_key: HostKeyPolicy::TrustOnFirstUse { recorded: None },
            credential: Default::default(),
        }
    }

    #[test]
    fn star_names_and_labels() {
        let web = target("web1", &["env=staging"]);
        let db = target("db1", &["env=prod"]);
        assert!(Selector::parse("*").unwrap().matches(&db));
        let s = Selector::parse("db1, env=staging").unwrap();
        assert!(s.matches(&web) && s.matches(&db));
        let s = Selector::parse("env=staging").unwrap();
        assert!(s.matches(&web) && !s.matches(&db));
        assert!(!Selector::parse("web2").unwrap().matches(&web));
    }

    #[test]
    fn round_trips_and_rejects() {
        assert_eq!(
            Selector::parse("a,env=x,*").unwrap().to_string(),
            "a,env=x,*"
        );
        for bad in ["", "a,,b", "=x", "env=", "bad name"] {
            assert!(Selector::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
