//! The audit event model: one JSON object per event, with Elastic Common
//! Schema field names where ECS has one and `vestibule.*` where it does not.
//! `docs/audit-events.md` is the reference; a field once written keeps its
//! name and meaning within a schema version.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::{SCHEMA_VERSION, Timestamp};

/// What happened. Unknown action names read from newer logs are kept as
/// [`Action::Other`] so older readers still parse them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    AuthenticationSuccess,
    AuthenticationFailure,
    AuthorizationAllow,
    AuthorizationDeny,
    SessionStart,
    SessionEnd,
    TargetFailure,
    CertificateIssue,
    RecordingStored,
    LockAdd,
    LockRemove,
    RequestCreate,
    RequestApprove,
    RequestDeny,
    BreakglassUse,
    AdminChange,
    ConfigReload,
    MfaEnroll,
    RecordingReplay,
    RecordingDelete,
    Other(String),
}

/// Every action this version defines, for documentation and tests.
pub const ACTIONS: &[Action] = &[
    Action::AuthenticationSuccess,
    Action::AuthenticationFailure,
    Action::AuthorizationAllow,
    Action::AuthorizationDeny,
    Action::SessionStart,
    Action::SessionEnd,
    Action::TargetFailure,
    Action::CertificateIssue,
    Action::RecordingStored,
    Action::LockAdd,
    Action::LockRemove,
    Action::RequestCreate,
    Action::RequestApprove,
    Action::RequestDeny,
    Action::BreakglassUse,
    Action::AdminChange,
    Action::ConfigReload,
    Action::MfaEnroll,
    Action::RecordingReplay,
    Action::RecordingDelete,
];

impl Action {
    pub fn as_str(&self) -> &str {
        match self {
            Action::AuthenticationSuccess => "authentication.success",
            Action::AuthenticationFailure => "authentication.failure",
            Action::AuthorizationAllow => "authorization.allow",
            Action::AuthorizationDeny => "authorization.deny",
            Action::SessionStart => "session.start",
            Action::SessionEnd => "session.end",
            Action::TargetFailure => "target.failure",
            Action::CertificateIssue => "certificate.issue",
            Action::RecordingStored => "recording.stored",
            Action::LockAdd => "lock.add",
            Action::LockRemove => "lock.remove",
            Action::RequestCreate => "request.create",
            Action::RequestApprove => "request.approve",
            Action::RequestDeny => "request.deny",
            Action::BreakglassUse => "breakglass.use",
            Action::AdminChange => "admin.change",
            Action::ConfigReload => "config.reload",
            Action::MfaEnroll => "mfa.enroll",
            Action::RecordingReplay => "recording.replay",
            Action::RecordingDelete => "recording.delete",
            Action::Other(name) => name,
        }
    }

    pub fn parse(name: &str) -> Self {
        ACTIONS
            .iter()
            .find(|a| a.as_str() == name)
            .cloned()
            .unwrap_or_else(|| Action::Other(name.to_owned()))
    }

    /// ECS `event.category`, `event.type` and the default `log.level`.
    fn defaults(&self) -> (&'static [&'static str], &'static [&'static str], Level) {
        use Action::*;
        match self {
            AuthenticationSuccess => (&["authentication"], &["start"], Level::Info),
            AuthenticationFailure => (&["authentication"], &["start"], Level::Warning),
            AuthorizationAllow => (&["iam"], &["allowed"], Level::Info),
            AuthorizationDeny => (&["iam"], &["denied"], Level::Warning),
            SessionStart => (&["session"], &["start"], Level::Info),
            SessionEnd => (&["session"], &["end"], Level::Info),
            TargetFailure => (&["network"], &["connection", "error"], Level::Warning),
            CertificateIssue => (&["iam"], &["creation"], Level::Info),
            RecordingStored => (&["file"], &["creation"], Level::Info),
            LockAdd | LockRemove => (&["iam"], &["change"], Level::Notice),
            RequestCreate => (&["iam"], &["creation"], Level::Info),
            RequestApprove => (&["iam"], &["change", "allowed"], Level::Notice),
            RequestDeny => (&["iam"], &["change", "denied"], Level::Notice),
            BreakglassUse => (&["iam", "session"], &["access", "admin"], Level::Critical),
            AdminChange => (&["configuration", "iam"], &["change"], Level::Notice),
            ConfigReload => (&["configuration"], &["change"], Level::Notice),
            MfaEnroll => (&["iam", "authentication"], &["creation"], Level::Notice),
            RecordingReplay => (&["file"], &["access"], Level::Info),
            RecordingDelete => (&["file"], &["deletion"], Level::Notice),
            Other(_) => (&[], &["info"], Level::Info),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Action::parse(&String::deserialize(deserializer)?))
    }
}

/// ECS `event.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
    Unknown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Unknown => "unknown",
        }
    }
}

/// ECS `log.level`; also the syslog severity of exported events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Notice,
    Warning,
    Error,
    Critical,
}

impl Level {
    /// RFC 5424 severity.
    pub fn syslog_severity(self) -> u8 {
        match self {
            Level::Critical => 2,
            Level::Error => 3,
            Level::Warning => 4,
            Level::Notice => 5,
            Level::Info => 6,
        }
    }
}

/// One audit event. Build it with [`AuditEvent::new`] and the setters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    #[serde(rename = "@timestamp")]
    pub timestamp: Timestamp,
    pub event: EventFields,
    pub log: LogFields,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<DestinationFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessFields>,
    pub vestibule: VestibuleFields,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventFields {
    pub action: Action,
    pub category: Vec<String>,
    #[serde(rename = "type")]
    pub kind_of: Vec<String>,
    pub kind: String,
    pub outcome: Outcome,
    pub dataset: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Nanoseconds, as ECS has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogFields {
    pub level: Level,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserFields {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Bytes the person sent towards the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationFields {
    /// Bytes the target sent back to the person.
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessFields {
    pub exit_code: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VestibuleFields {
    pub schema: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub details: Map<String, Value>,
}

impl AuditEvent {
    /// An event that happened now, with the category, type and level its
    /// action implies.
    pub fn new(action: Action, outcome: Outcome) -> Self {
        let (category, kind_of, level) = action.defaults();
        Self {
            timestamp: Timestamp::now(),
            event: EventFields {
                action,
                category: category.iter().map(|s| (*s).to_owned()).collect(),
                kind_of: kind_of.iter().map(|s| (*s).to_owned()).collect(),
                kind: "event".to_owned(),
                outcome,
                dataset: "vestibule.audit".to_owned(),
                reason: None,
                duration: None,
            },
            log: LogFields { level },
            user: None,
            source: None,
            destination: None,
            process: None,
            vestibule: VestibuleFields {
                schema: SCHEMA_VERSION,
                target: None,
                login: None,
                session_id: None,
                policy_ids: Vec::new(),
                ticket: None,
                auth_method: None,
                details: Map::new(),
            },
        }
    }

    pub fn at(mut self, timestamp: Timestamp) -> Self {
        self.timestamp = timestamp;
        self
    }

    pub fn level(mut self, level: Level) -> Self {
        self.log.level = level;
        self
    }

    /// `user.name`: the person (or the administrator) who acted.
    pub fn user(mut self, name: impl Into<String>) -> Self {
        self.user = Some(UserFields { name: name.into() });
        self
    }

    /// `source.ip` and `source.port`.
    pub fn source(mut self, addr: SocketAddr) -> Self {
        let source = self.source_mut();
        source.ip = Some(addr.ip());
        source.port = Some(addr.port());
        self
    }

    pub fn source_ip(mut self, ip: IpAddr) -> Self {
        self.source_mut().ip = Some(ip);
        self
    }

    pub fn target(mut self, name: impl Into<String>) -> Self {
        self.vestibule.target = Some(name.into());
        self
    }

    /// The account on the target.
    pub fn login(mut self, name: impl Into<String>) -> Self {
        self.vestibule.login = Some(name.into());
        self
    }

    pub fn session(mut self, id: impl Into<String>) -> Self {
        self.vestibule.session_id = Some(id.into());
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.event.reason = Some(reason.into());
        self
    }

    pub fn policy_ids<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.vestibule.policy_ids = ids.into_iter().map(Into::into).collect();
        self
    }

    pub fn ticket(mut self, ticket: impl Into<String>) -> Self {
        self.vestibule.ticket = Some(ticket.into());
        self
    }

    /// `publickey`, `password`, `certificate`, `keyboard-interactive`, ...
    pub fn auth_method(mut self, method: impl Into<String>) -> Self {
        self.vestibule.auth_method = Some(method.into());
        self
    }

    /// Bytes moved by a session: towards the target (`source.bytes`) and back
    /// (`destination.bytes`).
    pub fn bytes(mut self, to_target: u64, from_target: u64) -> Self {
        self.source_mut().bytes = Some(to_target);
        self.destination = Some(DestinationFields { bytes: from_target });
        self
    }

    /// `event.duration`, in nanoseconds.
    pub fn duration(mut self, duration: Duration) -> Self {
        self.event.duration = Some(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
        self
    }

    /// `process.exit_code`: the exit status the target reported.
    pub fn exit_status(mut self, code: i64) -> Self {
        self.process = Some(ProcessFields { exit_code: code });
        self
    }

    /// A free-form field under `vestibule.details`.
    pub fn detail(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.vestibule.details.insert(key.into(), value.into());
        self
    }

    /// `vestibule.details.before` and `.after`, for administrative changes.
    pub fn change(self, before: impl Into<Value>, after: impl Into<Value>) -> Self {
        self.detail("before", before).detail("after", after)
    }

    pub fn action(&self) -> &Action {
        &self.event.action
    }

    pub fn outcome(&self) -> Outcome {
        self.event.outcome
    }

    pub fn user_name(&self) -> Option<&str> {
        self.user.as_ref().map(|u| u.name.as_str())
    }

    pub fn target_name(&self) -> Option<&str> {
        self.vestibule.target.as_deref()
    }

    pub fn session_id(&self) -> Option<&str> {
        self.vestibule.session_id.as_deref()
    }

    fn source_mut(&mut self) -> &mut SourceFields {
        self.source.get_or_insert(SourceFields {
            ip: None,
            port: None,
            bytes: None,
        })
    }
}

/// An event as the log holds it: its place in the chain and its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub seq: u64,
    pub hash: String,
    pub event: AuditEvent,
}

/// The exported form of an event: the event object with `event.sequence`
/// and `event.hash` added, so a SIEM copy can be checked against the chain.
pub(crate) fn export_value(mut event: Value, seq: u64, hash: &str) -> Value {
    if let Some(fields) = event.get_mut("event").and_then(Value::as_object_mut) {
        fields.insert("sequence".to_owned(), Value::from(seq));
        fields.insert("hash".to_owned(), Value::from(hash));
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serialises_nested_ecs_fields() {
        let event = AuditEvent::new(Action::SessionStart, Outcome::Success)
            .at(Timestamp::from_unix_millis(1_714_564_800_000))
            .user("alice")
            .source("192.0.2.7:50022".parse().unwrap())
            .target("web1")
            .login("root")
            .session("s-1")
            .policy_ids(["role:ops"])
            .ticket("CHG-42")
            .auth_method("publickey");
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(value["@timestamp"], "2024-05-01T12:00:00.000Z");
        assert_eq!(value["event"]["action"], "session.start");
        assert_eq!(value["event"]["category"], json!(["session"]));
        assert_eq!(value["event"]["outcome"], "success");
        assert_eq!(value["log"]["level"], "info");
        assert_eq!(value["user"]["name"], "alice");
        assert_eq!(value["source"]["ip"], "192.0.2.7");
        assert_eq!(value["source"]["port"], 50022);
        assert_eq!(value["vestibule"]["schema"], 1);
        assert_eq!(value["vestibule"]["target"], "web1");
        assert_eq!(value["vestibule"]["login"], "root");
        assert_eq!(value["vestibule"]["session_id"], "s-1");
        assert_eq!(value["vestibule"]["policy_ids"], json!(["role:ops"]));
        assert_eq!(value["vestibule"]["ticket"], "CHG-42");
        assert_eq!(value["vestibule"]["auth_method"], "publickey");
        assert!(value.get("destination").is_none());
        let back: AuditEvent = serde_json::from_value(value).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn session_end_and_admin_change_fields() {
        let event = AuditEvent::new(Action::SessionEnd, Outcome::Success)
            .bytes(10, 20)
            .duration(Duration::from_millis(1500))
            .exit_status(3);
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(value["source"]["bytes"], 10);
        assert_eq!(value["destination"]["bytes"], 20);
        assert_eq!(value["event"]["duration"], 1_500_000_000u64);
        assert_eq!(value["process"]["exit_code"], 3);

        let change = AuditEvent::new(Action::AdminChange, Outcome::Success)
            .user("root")
            .detail("object", "role:ops")
            .change(
                json!({"logins": ["app"]}),
                json!({"logins": ["app", "root"]}),
            );
        let value = serde_json::to_value(&change).unwrap();
        assert_eq!(
            value["vestibule"]["details"]["before"]["logins"],
            json!(["app"])
        );
        assert_eq!(value["vestibule"]["details"]["object"], "role:ops");
        assert_eq!(value["log"]["level"], "notice");
    }

    #[test]
    fn break_glass_is_critical_and_unknown_actions_survive() {
        let event = AuditEvent::new(Action::BreakglassUse, Outcome::Success);
        assert_eq!(event.log.level, Level::Critical);
        for action in ACTIONS {
            assert_eq!(&Action::parse(action.as_str()), action);
        }
        let future: Action = serde_json::from_value(json!("replay.view")).unwrap();
        assert_eq!(future, Action::Other("replay.view".into()));
        assert_eq!(serde_json::to_value(&future).unwrap(), json!("replay.view"));
    }
}
