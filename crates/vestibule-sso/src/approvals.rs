//! Pending approvals: an SSH connection (or `vestibule login --sso`) waits
//! while its person completes single sign-on in a browser at
//! `/auth/approve/XXXX-XXXX`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngExt as _;
use tokio::sync::watch;

use crate::SsoError;

/// Length of a code as shown: `XXXX-XXXX`.
pub const APPROVAL_CODE_LEN: usize = 9;

/// Letters and digits that cannot be mistaken for one another.
const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/// Who waits for an approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalKind {
    /// An SSH connection as `user`: the single sign-on must name that person.
    Ssh { user: String, peer: String },
    /// `vestibule login --sso`: the certificate is for `public_key`.
    Cli {
        /// The person the command line expects to be, if it said.
        user: Option<String>,
        public_key: String,
        ttl_secs: Option<u64>,
        peer: String,
    },
}

/// A new pending approval.
#[derive(Debug, Clone)]
pub struct PendingApproval {
    /// `XXXX-XXXX`.
    pub code: String,
    pub expires_in: Duration,
}

/// A completed approval: who logged in, and what the browser side produced for
/// the waiter (the certificate of a command-line login).
#[derive(Debug, Clone)]
pub struct Approved {
    pub user: String,
    pub roles: Vec<String>,
    /// The single sign-on was multi-factor (its `amr`).
    pub mfa: bool,
    pub payload: Option<serde_json::Value>,
}

type Outcome = Option<Result<Approved, String>>;

struct Entry {
    kind: ApprovalKind,
    expires: Instant,
    outcome: watch::Sender<Outcome>,
}

/// The registry of pending approvals; bounded, in memory, each code single-use.
pub struct Approvals {
    entries: Mutex<HashMap<String, Entry>>,
    max: usize,
}

impl Default for Approvals {
    fn default() -> Self {
        Self::new(1024)
    }
}

impl Approvals {
    pub fn new(max: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A poisoned map is still a consistent map of plain values.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Register a wait of `kind` valid for `ttl`; the code is shown to the person.
    pub fn create(&self, kind: ApprovalKind, ttl: Duration) -> Result<PendingApproval, SsoError> {
        let now = Instant::now();
        let mut entries = self.lock();
        entries.retain(|_, e| e.expires > now);
        if entries.len() >= self.max {
            return Err(SsoError::Busy);
        }
        let code = loop {
            let code = new_code();
            if !entries.contains_key(&code) {
                break code;
            }
        };
        let (outcome, _) = watch::channel(None);
        entries.insert(
            code.clone(),
            Entry {
                kind,
                expires: now + ttl,
                outcome,
            },
        );
        Ok(PendingApproval {
            code,
            expires_in: ttl,
        })
    }

    /// The wait behind `code`, if it is pending (not expired, not completed).
    pub fn pending(&self, code: &str) -> Option<ApprovalKind> {
        let code = normalize(code)?;
        let entries = self.lock();
        let entry = entries.get(&code)?;
        (entry.expires > Instant::now() && entry.outcome.borrow().is_none())
            .then(|| entry.kind.clone())
    }

    /// What waits behind `code` (completed or not), until its waiter collects it.
    pub fn kind(&self, code: &str) -> Option<ApprovalKind> {
        let code = normalize(code)?;
        let entries = self.lock();
        let entry = entries.get(&code)?;
        (entry.expires > Instant::now()).then(|| entry.kind.clone())
    }

    /// Complete `code` with the browser side's outcome (`Err` is a message for
    /// the waiting person). A code completes once; false if it was not pending.
    pub fn complete(&self, code: &str, outcome: Result<Approved, String>) -> bool {
        let Some(code) = normalize(code) else {
            return false;
        };
        let entries = self.lock();
        let Some(entry) = entries.get(&code) else {
            return false;
        };
        if entry.expires <= Instant::now() {
            return false;
        }
        entry.outcome.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(outcome);
            true
        })
    }

    /// Wait until `code` is completed in a browser, at most `timeout`. The code
    /// is gone afterwards, whatever the result.
    pub async fn wait(&self, code: &str, timeout: Duration) -> Result<Approved, SsoError> {
        let code = normalize(code).ok_or(SsoError::BadState)?;
        let mut receiver = {
            let entries = self.lock();
            entries
                .get(&code)
                .ok_or(SsoError::BadState)?
                .outcome
                .subscribe()
        };
        let waited = tokio::time::timeout(timeout, receiver.wait_for(Option::is_some)).await;
        let result = match waited {
            Ok(Ok(outcome)) => match outcome.clone() {
                Some(Ok(approved)) => Ok(approved),
                Some(Err(message)) => Err(SsoError::NotAllowed(message)),
                None => Err(SsoError::TimedOut),
            },
            Ok(Err(_)) => Err(SsoError::BadState),
            Err(_) => Err(SsoError::TimedOut),
        };
        self.lock().remove(&code);
        result
    }

    /// Forget `code` (the waiter went away).
    pub fn cancel(&self, code: &str) {
        if let Some(code) = normalize(code) {
            self.lock().remove(&code);
        }
    }
}

fn new_code() -> String {
    let mut rng = rand::rng();
    let mut code = String::with_capacity(APPROVAL_CODE_LEN);
    for i in 0..8 {
        if i == 4 {
            code.push('-');
        }
        let index = rng.random_range(0..ALPHABET.len());
        code.push(char::from(ALPHABET[index]));
    }
    code
}

/// `xxxx-xxxx` as typed, or `None` when it cannot be a code.
fn normalize(code: &str) -> Option<String> {
    let code = code.trim().to_ascii_uppercase();
    let valid = code.len() == APPROVAL_CODE_LEN
        && code.bytes().enumerate().all(|(i, b)| {
            if i == 4 {
                b == b'-'
            } else {
                ALPHABET.contains(&b)
            }
        });
    valid.then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh() -> ApprovalKind {
        ApprovalKind::Ssh {
            user: "alice".into(),
            peer: "127.0.0.1".into(),
        }
    }

    #[tokio::test]
    async fn completes_once_and_times_out() {
        let approvals = std::sync::Arc::new(Approvals::default());
        let pending = approvals.create(ssh(), Duration::from_secs(60)).unwrap();
        assert_eq!(pending.code.len(), APPROVAL_CODE_LEN);
        assert_eq!(approvals.pending(&pending.code.to_lowercase()), Some(ssh()));
        let waiter = {
            let approvals = approvals.clone();
            let code = pending.code.clone();
            tokio::spawn(async move { approvals.wait(&code, Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let approved = Approved {
            user: "alice".into(),
            roles: vec![],
            mfa: false,
            payload: None,
        };
        assert!(approvals.complete(&pending.code, Ok(approved.clone())));
        assert!(!approvals.complete(&pending.code, Ok(approved)));
        assert_eq!(waiter.await.unwrap().unwrap().user, "alice");
        assert!(approvals.pending(&pending.code).is_none());

        let late = approvals.create(ssh(), Duration::from_secs(60)).unwrap();
        let error = approvals
            .wait(&late.code, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(matches!(error, SsoError::TimedOut));
        assert!(matches!(
            approvals.wait("nope", Duration::from_millis(1)).await,
            Err(SsoError::BadState)
        ));
    }

    #[tokio::test]
    async fn refusal_reaches_the_waiter() {
        let approvals = Approvals::default();
        let pending = approvals.create(ssh(), Duration::from_secs(60)).unwrap();
        assert!(approvals.complete(&pending.code, Err("you are bob, not alice".into())));
        let error = approvals
            .wait(&pending.code, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(error.to_string(), "you are bob, not alice");
    }

    #[test]
    fn bounded() {
        let approvals = Approvals::new(1);
        approvals.create(ssh(), Duration::from_secs(60)).unwrap();
        assert!(matches!(
            approvals.create(ssh(), Duration::from_secs(60)),
            Err(SsoError::Busy)
        ));
    }
}
