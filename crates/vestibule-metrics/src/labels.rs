//! Label values: the fixed sets the documentation promises, and a bound on the
//! open ones, so that a caller passing an error message or a user name can never
//! make the number of series grow without limit.

use std::collections::HashSet;
use std::sync::Mutex;

/// The value that stands for anything outside a fixed set or past a bound.
pub(crate) const OTHER: &str = "other";

/// Longest open label value kept; longer ones are cut.
const MAX_LEN: usize = 48;

pub(crate) const AUTH_RESULTS: &[&str] = &["success", "failure", "locked_out"];
/// The methods the gateway reports today; others are accepted within a bound.
pub(crate) const AUTH_METHODS: &[&str] = &["publickey", "certificate", "password"];
pub(crate) const PROTOCOLS: &[&str] = &[
    "shell",
    "exec",
    "sftp",
    "scp",
    "rsync",
    "port_forward",
    "jump",
];
pub(crate) const DIRECTIONS: &[&str] = &["to_target", "from_target"];
pub(crate) const POLICY_RESULTS: &[&str] = &["allow", "deny"];
pub(crate) const CERT_KINDS: &[&str] = &["user", "host"];
pub(crate) const RECORDING_STATES: &[&str] = &["complete", "incomplete"];
pub(crate) const REPLAY_RESULTS: &[&str] = &["success", "failure"];
pub(crate) const RELOAD_RESULTS: &[&str] = &["success", "failure"];

/// Lower case, `-` and spaces as `_`.
fn fold(value: &str) -> String {
    value
        .trim()
        .chars()
        .map(|c| match c {
            '-' | ' ' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// `value` if it is one of `allowed` (after folding case and `-`), else
/// [`OTHER`].
pub(crate) fn pick(value: &str, allowed: &'static [&'static str]) -> &'static str {
    let folded = fold(value);
    allowed
        .iter()
        .find(|known| **known == folded)
        .copied()
        .unwrap_or(OTHER)
}

/// A session kind as the gateway names it (`shell`, `port-forward: web1:80`,
/// `sftp`) reduced to one of [`PROTOCOLS`] or [`OTHER`].
pub(crate) fn protocol(kind: &str) -> &'static str {
    let head = kind.split([':', ' ', '(']).next().unwrap_or("");
    match fold(head).as_str() {
        "port_forward" | "forward" | "direct_tcpip" | "tcpip" => "port_forward",
        "jump" | "proxyjump" | "proxy_jump" => "jump",
        other => PROTOCOLS
            .iter()
            .find(|known| **known == other)
            .copied()
            .unwrap_or(OTHER),
    }
}

/// A label whose values are not known in advance (a sink's name, an auth
/// method, a failure reason): values are cleaned to `[a-z0-9_.:-]`, cut to
/// 48 characters, and once `limit` distinct values have been seen every new
/// one becomes [`OTHER`].
pub(crate) struct OpenLabel {
    seen: Mutex<HashSet<String>>,
    limit: usize,
}

impl OpenLabel {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            seen: Mutex::new(HashSet::new()),
            limit,
        }
    }

    /// The value to use for `raw`.
    pub(crate) fn value(&self, raw: &str) -> String {
        let mut clean: String = raw
            .trim()
            .chars()
            .map(|c| match c {
                'a'..='z' | '0'..='9' | '_' | '.' | ':' | '-' => c,
                'A'..='Z' => c.to_ascii_lowercase(),
                _ => '_',
            })
            .take(MAX_LEN)
            .collect();
        if clean.is_empty() {
            clean.push_str("unknown");
        }
        // A poisoned lock only means another thread panicked while holding it;
        // the set itself is always consistent.
        let mut seen = match self.seen.lock() {
            Ok(seen) => seen,
            Err(poisoned) => poisoned.into_inner(),
        };
        if seen.contains(&clean) {
            return clean;
        }
        if seen.len() >= self.limit {
            return OTHER.to_owned();
        }
        seen.insert(clean.clone());
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_sets_fold_case_and_dashes() {
        assert_eq!(pick("locked-out", AUTH_RESULTS), "locked_out");
        assert_eq!(pick("SUCCESS", AUTH_RESULTS), "success");
        assert_eq!(pick("maybe", AUTH_RESULTS), OTHER);
    }

    #[test]
    fn session_kinds_map_to_protocols() {
        assert_eq!(protocol("shell"), "shell");
        assert_eq!(protocol("port-forward: web1:80"), "port_forward");
        assert_eq!(protocol("port_forward"), "port_forward");
        assert_eq!(protocol("SFTP"), "sftp");
        assert_eq!(protocol("jump"), "jump");
        assert_eq!(protocol("x11"), OTHER);
        assert_eq!(protocol(""), OTHER);
    }

    #[test]
    fn open_labels_are_cleaned_and_bounded() {
        let label = OpenLabel::new(2);
        assert_eq!(label.value("Splunk HEC"), "splunk_hec");
        assert_eq!(label.value("a\"b\nc"), "a_b_c");
        assert_eq!(label.value("third"), OTHER);
        // Values seen before the bound keep their own series.
        assert_eq!(label.value("splunk hec"), "splunk_hec");
        assert_eq!(label.value("  "), OTHER);
        let long = "x".repeat(200);
        assert_eq!(OpenLabel::new(1).value(&long).len(), 48);
        assert_eq!(OpenLabel::new(1).value(""), "unknown");
    }
}
