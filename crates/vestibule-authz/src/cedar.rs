//! The Cedar engine: the operators' policy files plus the policies the subject's
//! roles stand for, evaluated against entities built from the subject and target.
//!
//! The two sets are evaluated apart and combined with Cedar's own rule (any
//! forbid denies; otherwise any permit allows; otherwise deny), which is the same
//! as evaluating their union: role policies only ever name the subject's roles.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use cedar_policy::{
    Decision, Effect, Entities, Entity, EntityUid, PolicySet, PrincipalConstraint, Request,
    RestrictedExpression, Schema,
};
use vestibule_core::Target;

use crate::policy_dir::{Fingerprint, PolicyDir, PolicyError, PolicySetInfo, parse_schema};
use crate::reload::{ReloadFailure, ReloadObserver, ReloadReport, ReloadTrigger};
use crate::{Action, PolicyEngine, RequestContext, Subject, Verdict, role_policy};

/// The file policies sliced by their principal scope, so a decision evaluates
/// only the policies that can apply to its principal: those for anyone, and
/// those scoped to the person, one of their roles or one of their groups.
/// (Users sit directly in roles and groups, so this loses nothing.)
#[derive(Default)]
struct Sliced {
    anyone: PolicySet,
    by_principal: HashMap<String, PolicySet>,
}

impl Sliced {
    fn new(set: &PolicySet) -> Self {
        let mut sliced = Self::default();
        for policy in set.policies() {
            let bucket = match policy.principal_constraint() {
                PrincipalConstraint::Eq(uid) | PrincipalConstraint::In(uid) => {
                    sliced.by_principal.entry(uid.to_string()).or_default()
                }
                _ => &mut sliced.anyone,
            };
            // Ids are unique within `set`, so adding to a slice cannot clash.
            let _ = bucket.add(policy.clone());
        }
        sliced
    }

    fn for_subject<'a>(&'a self, subject: &Subject) -> Vec<&'a PolicySet> {
        let mut sets = vec![&self.anyone];
        let keys = std::iter::once(format!("Vestibule::User::\"{}\"", subject.person))
            .chain(
                subject
                    .roles
                    .iter()
                    .map(|r| format!("Vestibule::Role::\"{}\"", r.name)),
            )
            .chain(
                subject
                    .groups
                    .iter()
                    .map(|g| format!("Vestibule::Group::\"{g}\"")),
            );
        for key in keys {
            if let Some(set) = self.by_principal.get(&key) {
                sets.push(set);
            }
        }
        sets
    }
}

struct Loaded {
    set: Arc<Sliced>,
    fingerprint: Fingerprint,
    /// String literals of the file policies that look at `context.login`.
    logins: Arc<Vec<String>>,
    info: PolicySetInfo,
    /// The files' state when a load was last refused, so a bad set is reported
    /// once rather than re-parsed at every decision.
    refused: Option<Fingerprint>,
}

/// Cedar-backed [`PolicyEngine`]; reloads its files when they change.
pub struct CedarEngine {
    schema: Schema,
    actions: Entities,
    dir: Option<PolicyDir>,
    loaded: RwLock<Loaded>,
    checked: Mutex<Option<Instant>>,
    roles: Mutex<HashMap<String, Arc<PolicySet>>>,
    cedar: cedar_policy::Authorizer,
    observer: RwLock<Option<ReloadObserver>>,
}

/// How often a decision looks for changed policy files.
const REFRESH_EVERY: Duration = Duration::from_millis(100);
/// Role policy sets kept parsed; beyond this the cache starts over.
const ROLE_CACHE: usize = 4096;

impl CedarEngine {
    /// Load the policy files in `dir` (none is fine). A set with problems is an error.
    pub fn open(dir: PolicyDir) -> Result<Self, PolicyError> {
        let schema = parse_schema()?;
        let fingerprint = dir.fingerprint()?;
        let (set, info) = dir.load(&schema)?;
        Ok(Self::build(schema, Some(dir), set, info, fingerprint))
    }

    /// An engine with the role policies only.
    pub fn without_files() -> Result<Self, PolicyError> {
        Ok(Self::build(
            parse_schema()?,
            None,
            PolicySet::new(),
            PolicySetInfo::empty(),
            Vec::new(),
        ))
    }

    fn build(
        schema: Schema,
        dir: Option<PolicyDir>,
        set: PolicySet,
        info: PolicySetInfo,
        fingerprint: Fingerprint,
    ) -> Self {
        let actions = schema
            .action_entities()
            .unwrap_or_else(|_| Entities::empty());
        let logins = Arc::new(login_literals(&set));
        Self {
            schema,
            actions,
            dir,
            loaded: RwLock::new(Loaded {
                set: Arc::new(Sliced::new(&set)),
                fingerprint,
                logins,
                info,
                refused: None,
            }),
            checked: Mutex::new(None),
            roles: Mutex::new(HashMap::new()),
            cedar: cedar_policy::Authorizer::new(),
            observer: RwLock::new(None),
        }
    }

    /// The set in force now.
    pub fn in_force(&self) -> PolicySetInfo {
        let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
        loaded.info.clone()
    }

    /// Report every later load attempt to `observer`, and report the set in
    /// force now as the start-up load (the engine was opened before anything
    /// could observe it).
    pub fn observe_reloads(&self, observer: ReloadObserver) {
        observer(&ReloadReport {
            trigger: ReloadTrigger::Startup,
            in_force: self.in_force(),
            failure: None,
        });
        *self.observer.write().unwrap_or_else(|p| p.into_inner()) = Some(observer);
    }

    fn report(&self, report: &ReloadReport) {
        let observer = self
            .observer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(observer) = observer {
            observer(report);
        }
    }

    /// Validate the files in `dir` without an engine (`vestibule policy check`).
    pub fn check(dir: &PolicyDir) -> Result<PolicySetInfo, PolicyError> {
        let schema = parse_schema()?;
        dir.load(&schema).map(|(_, info)| info)
    }

    /// Load the files again (SIGHUP). On a problem the set in force stays in force.
    pub fn reload(&self) -> Result<Option<PolicySetInfo>, PolicyError> {
        self.reload_because(ReloadTrigger::Signal)
    }

    /// Load the files again and tell the observer how it went, whatever the
    /// outcome. On a problem the set in force stays in force.
    pub fn reload_because(
        &self,
        trigger: ReloadTrigger,
    ) -> Result<Option<PolicySetInfo>, PolicyError> {
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        let (result, report) = {
            let result = dir
                .fingerprint()
                .and_then(|fingerprint| Ok((fingerprint, dir.load(&self.schema)?)));
            let mut loaded = self.loaded.write().unwrap_or_else(|p| p.into_inner());
            match result {
                Ok((fingerprint, (set, info))) => {
                    loaded.logins = Arc::new(login_literals(&set));
                    loaded.set = Arc::new(Sliced::new(&set));
                    loaded.fingerprint = fingerprint;
                    loaded.info = info.clone();
                    loaded.refused = None;
                    tracing::info!(
                        %trigger,
                        files = info.files,
                        policies = info.policies,
                        sha256 = %info.sha256,
                        "policies loaded"
                    );
                    let report = ReloadReport {
                        trigger,
                        in_force: info.clone(),
                        failure: None,
                    };
                    (Ok(Some(info)), report)
                }
                Err(error) => {
                    // Remember what was refused so decisions do not retry it;
                    // a directory that cannot be read is retried next time.
                    if let Ok(fingerprint) = dir.fingerprint() {
                        loaded.refused = Some(fingerprint);
                    }
                    tracing::error!(%trigger, %error, "policy files refused; the policies in force stay in force");
                    let report = ReloadReport {
                        trigger,
                        in_force: loaded.info.clone(),
                        failure: Some(ReloadFailure::from(&error)),
                    };
                    (Err(error), report)
                }
            }
        };
        // Outside the lock: the observer may take its time.
        self.report(&report);
        result
    }

    /// Reload when the files changed since the last load (or refusal). Looked
    /// at no more often than [`REFRESH_EVERY`], to keep decisions cheap.
    fn refresh(&self) {
        let Some(dir) = &self.dir else { return };
        {
            let Ok(mut checked) = self.checked.lock() else {
                return;
            };
            if checked.is_some_and(|at| at.elapsed() < REFRESH_EVERY) {
                return;
            }
            *checked = Some(Instant::now());
        }
        let Ok(now) = dir.fingerprint() else { return };
        let stale = {
            let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
            now != loaded.fingerprint && loaded.refused.as_ref() != Some(&now)
        };
        if stale {
            let _ = self.reload_because(ReloadTrigger::FileChange);
        }
    }

    fn current(&self) -> (Arc<Sliced>, Arc<Vec<String>>) {
        self.refresh();
        let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
        (loaded.set.clone(), loaded.logins.clone())
    }

    fn entities(&self, subject: &Subject, target: &Target) -> Result<Entities, String> {
        let role_uid = |name: &str| uid("Role", name);
        let group_uid = |name: &str| uid("Group", name);
        let mut parents = Vec::new();
        let mut entities = Vec::new();
        for role in &subject.roles {
            let id = role_uid(&role.name)?;
            parents.push(id.clone());
            entities.push(Entity::new_no_attrs(id, HashSet::new()));
        }
        for group in &subject.groups {
            let id = group_uid(group)?;
            parents.push(id.clone());
            entities.push(Entity::new_no_attrs(id, HashSet::new()));
        }
        let user = Entity::new_with_tags(
            uid("User", &subject.person)?,
            [("name".to_owned(), string(&subject.person))],
            parents,
            [],
        )
        .map_err(|e| e.to_string())?;
        let target = Entity::new_with_tags(
            uid("Target", &target.name)?,
            [
                ("name".to_owned(), string(&target.name)),
                ("host".to_owned(), string(&target.host)),
                (
                    "port".to_owned(),
                    RestrictedExpression::new_long(i64::from(target.port)),
                ),
            ],
            [],
            target
                .labels
                .iter()
                .map(|l| (l.key.clone(), string(&l.value))),
        )
        .map_err(|e| e.to_string())?;
        entities.push(user);
        entities.push(target);
        self.actions
            .clone()
            // Built here to the schema's shape; validating them per request
            // would cost more than the decision.
            .add_entities(entities, None)
            .map_err(|e| e.to_string())
    }

    fn evaluate(
        &self,
        subject: &Subject,
        target: &Target,
        action: Action<'_>,
        context: &RequestContext,
    ) -> Result<Verdict, String> {
        let (files, _) = self.current();
        let roles = self.role_set(subject)?;
        let entities = self.entities(subject, target)?;
        let request = Request::new(
            uid("User", &subject.person)?,
            uid("Action", action.name())?,
            uid("Target", &target.name)?,
            context.to_cedar(&action)?,
            Some(&self.schema),
        )
        .map_err(|e| e.to_string())?;
        let mut verdict = Verdict {
            allowed: false,
            policy_ids: Vec::new(),
            reasons: Vec::new(),
            wants_ticket: false,
            errors: Vec::new(),
        };
        let mut permits = BTreeSet::new();
        let mut forbids = BTreeSet::new();
        let mut sets = files.for_subject(subject);
        sets.push(roles.as_ref());
        for set in sets {
            let response = self.cedar.is_authorized(&request, set, &entities);
            verdict
                .errors
                .extend(response.diagnostics().errors().map(ToString::to_string));
            for id in response.diagnostics().reason() {
                let Some(policy) = set.policy(id) else {
                    continue;
                };
                match (response.decision(), policy.effect()) {
                    (Decision::Allow, Effect::Permit) => {
                        permits.insert(id.to_string());
                    }
                    (Decision::Deny, Effect::Forbid) => {
                        forbids.insert(id.to_string());
                        if let Some(reason) = policy.annotation("reason") {
                            verdict.reasons.push(reason.to_owned());
                        }
                        if policy.annotation("ticket") == Some("required") {
                            verdict.wants_ticket = true;
                        }
                    }
                    _ => {}
                }
            }
        }
        if forbids.is_empty() {
            verdict.allowed = !permits.is_empty();
            verdict.policy_ids = permits.into_iter().collect();
        } else {
            verdict.policy_ids = forbids.into_iter().collect();
        }
        Ok(verdict)
    }
}

impl PolicyEngine for CedarEngine {
    fn decide(
        &self,
        subject: &Subject,
        target: &Target,
        action: Action<'_>,
        context: &RequestContext,
    ) -> Verdict {
        self.evaluate(subject, target, action, context)
            .unwrap_or_else(|error| Verdict {
                // Anything that keeps the request from being evaluated denies.
                allowed: false,
                policy_ids: Vec::new(),
                reasons: Vec::new(),
                wants_ticket: false,
                errors: vec![error],
            })
    }

    fn candidate_logins(&self, subject: &Subject, target: &Target) -> Vec<String> {
        let (_, literals) = self.current();
        let mut logins: BTreeSet<String> = subject
            .roles
            .iter()
            .flat_map(|r| r.logins.iter().cloned())
            .collect();
        logins.extend(target.default_login.iter().cloned());
        logins.extend(literals.iter().cloned());
        logins.into_iter().collect()
    }
}

fn uid(kind: &str, id: &str) -> Result<EntityUid, String> {
    let type_name = cedar_policy::EntityTypeName::from_str(&format!("Vestibule::{kind}"))
        .map_err(|e| e.to_string())?;
    Ok(EntityUid::from_type_name_and_id(
        type_name,
        cedar_policy::EntityId::new(id),
    ))
}

fn string(text: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(text.to_owned())
}

impl CedarEngine {
    /// The subject's role policies, parsed once per distinct set of roles.
    fn role_set(&self, subject: &Subject) -> Result<Arc<PolicySet>, String> {
        let text: String = subject.roles.iter().map(role_policy).collect();
        if let Ok(cache) = self.roles.lock()
            && let Some(set) = cache.get(&text)
        {
            return Ok(set.clone());
        }
        let set = Arc::new(parse_role_policies(&text)?);
        if let Ok(mut cache) = self.roles.lock() {
            if cache.len() >= ROLE_CACHE {
                cache.clear();
            }
            cache.insert(text, set.clone());
        }
        Ok(set)
    }
}

fn parse_role_policies(text: &str) -> Result<PolicySet, String> {
    let parsed = PolicySet::from_str(text).map_err(|e| e.to_string())?;
    let mut set = PolicySet::new();
    for policy in parsed.policies() {
        let id = policy.annotation("id").unwrap_or("role").to_owned();
        set.add(policy.new_id(cedar_policy::PolicyId::new(id)))
            .map_err(|e| e.to_string())?;
    }
    Ok(set)
}

/// Strings that policies compare `context.login` with: the logins a picker
/// should ask about. Collected from each such policy's JSON form.
fn login_literals(set: &PolicySet) -> Vec<String> {
    fn walk(value: &serde_json::Value, out: &mut BTreeSet<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, inner) in map {
                    match (key.as_str(), inner) {
                        ("Value", serde_json::Value::String(s)) => {
                            out.insert(s.clone());
                        }
                        _ => walk(inner, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for policy in set.policies() {
        if !policy.to_string().contains("context.login") {
            continue;
        }
        if let Ok(json) = policy.to_json() {
            walk(&json, &mut out);
        }
    }
    out.retain(|s| vestibule_core::validate_login(s).is_ok());
    out.into_iter().collect()
}
