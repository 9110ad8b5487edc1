//! Policy files: `DATA_DIR/policies/*.cedar`, parsed, named and validated against
//! the schema as one set. A set with any problem is refused as a whole, and the
//! engine keeps the set it had (see [`crate::CedarEngine::reload`]).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::SystemTime;

use cedar_policy::{PolicyId, PolicySet, Schema, ValidationMode, Validator};
use miette::Diagnostic;

/// One thing wrong with a policy file, with its position when Cedar gives one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": {}", self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy directory {}: {source}", dir.display())]
    ReadDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read policy file {}: {source}", file.display())]
    ReadFile {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid { problems: Vec<PolicyProblem> },
    #[error("the built-in schema does not parse: {0}")]
    Schema(String),
}

/// What a loaded set holds, for `policy check`, reload logs and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySetInfo {
    pub files: usize,
    pub policies: usize,
    /// Hex SHA-256 of the files as loaded (see [`set_digest`]), so an auditor
    /// can tell which set was in force and match it to a copy of the files.
    pub sha256: String,
}

impl PolicySetInfo {
    /// No files: the set an engine without a policy directory has.
    pub fn empty() -> Self {
        Self {
            files: 0,
            policies: 0,
            sha256: set_digest(&[]),
        }
    }
}

/// SHA-256 over the files in name order, each as its file name, `\n`, its
/// length in bytes (decimal), `\n`, and its contents. Lengths keep the
/// concatenation unambiguous; names make a renamed file a different set.
pub fn set_digest(sources: &[(PathBuf, String)]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for (file, text) in sources {
        let name = file
            .file_name()
            .map_or_else(|| file.to_string_lossy(), |n| n.to_string_lossy());
        hasher.update(name.as_bytes());
        hasher.update(b"\n");
        hasher.update(text.len().to_string().as_bytes());
        hasher.update(b"\n");
        hasher.update(text.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A directory of policy files and what is needed to tell whether it changed.
#[derive(Debug, Clone)]
pub struct PolicyDir {
    dir: PathBuf,
}

/// Files' names, sizes and modification times: a change in any means reload.
pub(crate) type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

impl PolicyDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The `*.cedar` files, sorted by name. A missing directory holds none.
    pub fn files(&self) -> Result<Vec<PathBuf>, PolicyError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(PolicyError::ReadDir {
                    dir: self.dir.clone(),
                    source,
                });
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "cedar") && p.is_file())
            .collect();
        files.sort();
        Ok(files)
    }

    pub(crate) fn fingerprint(&self) -> Result<Fingerprint, PolicyError> {
        Ok(self
            .files()?
            .into_iter()
            .map(|file| {
                let meta = std::fs::metadata(&file).ok();
                let size = meta.as_ref().map_or(0, |m| m.len());
                let modified = meta.and_then(|m| m.modified().ok());
                (file, size, modified)
            })
            .collect())
    }

    /// Parse and validate every file as one set.
    pub fn load(&self, schema: &Schema) -> Result<(PolicySet, PolicySetInfo), PolicyError> {
        let files = self.files()?;
        let mut sources = Vec::with_capacity(files.len());
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|source| PolicyError::ReadFile {
                file: file.clone(),
                source,
            })?;
            sources.push((file, text));
        }
        load_sources(&sources, schema)
    }
}

/// Parse, name and validate policies from `(file, text)` pairs.
pub(crate) fn load_sources(
    sources: &[(PathBuf, String)],
    schema: &Schema,
) -> Result<(PolicySet, PolicySetInfo), PolicyError> {
    let mut problems = Vec::new();
    let mut set = PolicySet::new();
    // Which file each policy came from, to place validation errors.
    let mut origin: HashMap<PolicyId, usize> = HashMap::new();
    for (index, (file, text)) in sources.iter().enumerate() {
        let parsed = match PolicySet::from_str(text) {
            Ok(parsed) => parsed,
            Err(errors) => {
                problems.extend(diagnostic_problems(&errors, file, text));
                continue;
            }
        };
        if parsed.templates().next().is_some() {
            problems.push(problem(
                file,
                None,
                "policy templates are not supported".into(),
            ));
        }
        let mut policies: Vec<_> = parsed.policies().collect();
        // Cedar names a file's policies policy0, policy1, ... in order of appearance.
        policies.sort_by_key(|p| ordinal(p.id()));
        for (n, policy) in policies.into_iter().enumerate() {
            let name = file.file_name().map_or_else(
                || file.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            let id = policy
                .annotation("id")
                .map_or_else(|| format!("{name}#{}", n + 1), str::to_owned);
            let id = PolicyId::new(id);
            if let Err(e) = set.add(policy.new_id(id.clone())) {
                problems.push(problem(file, None, format!("{e} (policy id {id})")));
                continue;
            }
            origin.insert(id, index);
        }
    }
    if problems.is_empty() {
        let validation = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
        for error in validation.validation_errors() {
            let (file, text) = match origin.get(error.policy_id()) {
                Some(&i) => (&sources[i].0, sources[i].1.as_str()),
                None => continue,
            };
            problems.extend(diagnostic_problems(error, file, text));
        }
    }
    if problems.is_empty() {
        let info = PolicySetInfo {
            files: sources.len(),
            policies: set.policies().count(),
            sha256: set_digest(sources),
        };
        Ok((set, info))
    } else {
        Err(PolicyError::Invalid { problems })
    }
}

fn ordinal(id: &PolicyId) -> usize {
    id.to_string()
        .strip_prefix("policy")
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

fn problem(file: &Path, at: Option<(usize, usize)>, message: String) -> PolicyProblem {
    PolicyProblem {
        file: file.to_owned(),
        line: at.map(|(l, _)| l),
        column: at.map(|(_, c)| c),
        message,
    }
}

/// One problem per error in the diagnostic (Cedar nests several parse errors as
/// related diagnostics), placed by its first label.
fn diagnostic_problems(diag: &dyn Diagnostic, file: &Path, text: &str) -> Vec<PolicyProblem> {
    let mut out = Vec::new();
    let related: Vec<&dyn Diagnostic> = diag.related().map(|r| r.collect()).unwrap_or_default();
    if related.is_empty() {
        out.push(one_problem(diag, file, text));
    } else {
        out.extend(related.into_iter().map(|d| one_problem(d, file, text)));
    }
    out
}

fn one_problem(diag: &dyn Diagnostic, file: &Path, text: &str) -> PolicyProblem {
    let at = diag
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| line_column(text, label.offset()));
    let mut message = diag.to_string();
    if let Some(help) = diag.help() {
        message.push_str(&format!(" ({help})"));
    }
    problem(file, at, message)
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..text.floor_char_boundary(offset.min(text.len()))];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The built-in schema, parsed.
pub(crate) fn parse_schema() -> Result<Schema, PolicyError> {
    Schema::from_cedarschema_str(crate::SCHEMA)
        .map(|(schema, _warnings)| schema)
        .map_err(|e| PolicyError::Schema(e.to_string()))
}
