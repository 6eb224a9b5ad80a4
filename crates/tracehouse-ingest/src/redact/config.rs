//! The redaction rules file as written (`serve --redact FILE`, `import --redact FILE`), and what
//! can be wrong with it. The binary parses the TOML into these types; [`super::Redaction::compile`]
//! checks them and builds the matchers.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A whole rules file: the rules every project gets, the hash key, and per-project rules.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactionConfig {
    /// Key of the `hash` action's HMAC-SHA256; required when any rule hashes.
    #[serde(default)]
    pub hash_key: Option<String>,
    /// Rules for every project, applied in this order.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Rules of one project (by name), added to or replacing the rules above.
    #[serde(default)]
    pub projects: BTreeMap<String, ProjectRules>,
}

/// The rules of one project.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectRules {
    /// Whether the file's top-level rules apply too (default true). A project rule with the
    /// name of a top-level rule replaces it in place; others come after them.
    #[serde(default = "inherit_by_default")]
    pub inherit: bool,
    /// The project's own rules.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

fn inherit_by_default() -> bool {
    true
}

/// One rule: what to find (a built-in detector or a regex), where, and what to do with it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The rule's name, in masks (`[REDACTED:name]`), hashes and the
    /// `tracehouse_redactions_total{rule}` metric; defaults to the detector's name.
    #[serde(default)]
    pub name: Option<String>,
    /// A built-in detector.
    #[serde(default)]
    pub detector: Option<Detector>,
    /// A custom regular expression (Rust `regex` syntax); a group named `secret` limits the
    /// replacement to that part of the match.
    #[serde(default)]
    pub regex: Option<String>,
    /// What happens to a match (default `mask`).
    #[serde(default)]
    pub action: Action,
    /// Where the rule looks (default `["all"]`).
    #[serde(default = "all_fields")]
    pub fields: Vec<FieldScope>,
    /// With `metadata` among the fields: only these top-level metadata keys (default: all).
    #[serde(default)]
    pub metadata_keys: Option<Vec<String>>,
}

fn all_fields() -> Vec<FieldScope> {
    vec![FieldScope::All]
}

/// The built-in detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// `name@example.com`.
    Email,
    /// International numbers with a `+` country code, and North American numbers written with
    /// separators (`(415) 555-0132`, `415-555-0132`).
    Phone,
    /// 13 to 19 digit card numbers (spaces or dashes allowed) that pass the Luhn check.
    CreditCard,
    /// IPv4 and IPv6 addresses.
    IpAddress,
    /// Provider API keys: OpenAI `sk-...`, Anthropic `sk-ant-...`, AWS `AKIA...`, GitHub
    /// `ghp_...`, Slack `xox?-...`, Google `AIza...`.
    ApiKey,
    /// JSON Web Tokens (`eyJ...` header, payload and signature).
    Jwt,
    /// The token after `Bearer ` (the word itself is kept).
    BearerToken,
}

impl Detector {
    /// Every detector, in the order `examples/redact.toml` lists them.
    pub const ALL: [Detector; 7] = [
        Detector::Email,
        Detector::Phone,
        Detector::CreditCard,
        Detector::IpAddress,
        Detector::ApiKey,
        Detector::Jwt,
        Detector::BearerToken,
    ];

    /// The name as the rules file spells it, and the default rule name.
    pub fn name(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::Phone => "phone",
            Detector::CreditCard => "credit_card",
            Detector::IpAddress => "ip_address",
            Detector::ApiKey => "api_key",
            Detector::Jwt => "jwt",
            Detector::BearerToken => "bearer_token",
        }
    }
}

/// What a rule does with what it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Replace the match with `[REDACTED:rule]`.
    #[default]
    Mask,
    /// Replace the match with `[HASH:rule:<12 hex digits>]`, a keyed hash: the same value
    /// always gives the same token, so grouping and filtering by it still work.
    Hash,
    /// Remove the whole field (object member or array item) that holds a match; a typed text
    /// field is cleared.
    Drop,
}

/// Where in a span a rule looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldScope {
    /// `input`.
    Input,
    /// `output`.
    Output,
    /// Chat messages and tools: `prompt_messages`, `completion_message(s)`, `messages`,
    /// `tools`, `span_tools`, `tool_calls`, `full_request`, `full_response`.
    Messages,
    /// Values of `metadata` (of every key, or of `metadata_keys`).
    Metadata,
    /// Every string of the span's content, and its free-text typed fields: name, error
    /// message, workflow name, path, customer, session, thread, trace group and environment.
    /// Ids, times, model and numbers are never rewritten.
    All,
}

/// Why a rules file cannot be used; every variant names the rule at fault.
#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    /// The rule's regex does not compile.
    #[error("redaction rule {rule:?}: invalid regex: {error}")]
    BadRegex {
        /// The rule's name.
        rule: String,
        /// What the regex compiler said.
        error: Box<regex::Error>,
    },
    /// A rule hashes but the file has no `hash_key`.
    #[error(
        "redaction rule {rule:?} uses action \"hash\" but the rules file has no hash_key: add hash_key = \"<at least {MIN_HASH_KEY_BYTES} characters>\""
    )]
    MissingHashKey {
        /// The rule's name.
        rule: String,
    },
    /// The hash key is too short to keep hashed values from being guessed.
    #[error("redaction hash_key is {length} bytes; use at least {MIN_HASH_KEY_BYTES}")]
    ShortHashKey {
        /// Its length in bytes.
        length: usize,
    },
    /// A rule names both a detector and a regex, or neither.
    #[error("redaction rule {rule:?}: give exactly one of detector = \"...\" or regex = \"...\"")]
    PatternCount {
        /// The rule's name (or its position when it has none).
        rule: String,
    },
    /// A regex rule without a name.
    #[error("redaction rule #{position}: a rule with a regex needs a name")]
    Unnamed {
        /// 1-based position of the rule in its list.
        position: usize,
    },
    /// A name that cannot appear in masks and metric labels.
    #[error(
        "redaction rule {rule:?}: names are 1 to 64 ASCII letters, digits, '_' or '-' (they appear in masks and metric labels)"
    )]
    BadName {
        /// The name.
        rule: String,
    },
    /// Two rules of one list share a name.
    #[error("redaction rule {rule:?} is defined twice")]
    Duplicate {
        /// The name.
        rule: String,
    },
    /// A rule with an empty `fields` list.
    #[error(
        "redaction rule {rule:?}: fields is empty; use any of input, output, messages, metadata, all"
    )]
    NoFields {
        /// The rule's name.
        rule: String,
    },
    /// `metadata_keys` on a rule that does not look at metadata.
    #[error("redaction rule {rule:?}: metadata_keys needs \"metadata\" among the fields")]
    MetadataKeysWithoutMetadata {
        /// The rule's name.
        rule: String,
    },
    /// A `[projects.NAME]` table whose name is not a project name.
    #[error("redaction rules for project {project:?}: not a valid project name: {reason}")]
    BadProject {
        /// The name as written.
        project: String,
        /// Why it is not valid.
        reason: String,
    },
    /// A rule of a project's list is wrong.
    #[error("project {project:?}: {source}")]
    InProject {
        /// The project.
        project: String,
        /// What is wrong with its rule.
        #[source]
        source: Box<RedactError>,
    },
    /// The rules together are too large for one matcher set.
    #[error("redaction rules cannot be compiled together: {0}")]
    Matchers(Box<regex::Error>),
}

/// The shortest `hash_key` accepted, in bytes.
pub const MIN_HASH_KEY_BYTES: usize = 16;
