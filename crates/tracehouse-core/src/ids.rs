//! Validated identifiers: trace and span ids as clients send them, projects and API keys.

use std::fmt;

use sha2::{Digest, Sha256};

/// Longest trace or span id accepted, in bytes; longer ids are rejected rather than truncated.
pub const MAX_ID_LEN: usize = 256;

/// Why a string is not a valid trace or span id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The id is the empty string (or only whitespace).
    #[error("must not be empty")]
    Empty,
    /// The id is longer than [`MAX_ID_LEN`] bytes.
    #[error("is {len} characters long, the limit is {MAX_ID_LEN}")]
    TooLong {
        /// Length of the rejected id in bytes.
        len: usize,
    },
    /// The id contains a control character, which no client sends on purpose.
    #[error("contains a control character")]
    ControlCharacter,
}

fn check_id(raw: &str) -> Result<(), IdError> {
    if raw.trim().is_empty() {
        return Err(IdError::Empty);
    }
    if raw.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { len: raw.len() });
    }
    if raw.chars().any(char::is_control) {
        return Err(IdError::ControlCharacter);
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The id exactly as the client sent it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(raw: String) -> Result<Self, IdError> {
                check_id(&raw)?;
                Ok(Self(raw))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(raw: &str) -> Result<Self, IdError> {
                check_id(raw)?;
                Ok(Self(raw.to_owned()))
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(raw: &str) -> Result<Self, IdError> {
                Self::try_from(raw)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// The id grouping spans into a trace (`trace_unique_id`).
    ///
    /// Span-log clients send arbitrary strings (`trace_a2d0…`, UUIDs, hex), OTLP sends 16 bytes
    /// that the decoder renders as 32 lowercase hex digits, so this is a validated string.
    TraceId
);
string_id!(
    /// The id of one span within a trace (`span_unique_id`, also used for `span_parent_id`).
    SpanId
);

/// The id of one span in its project (`id` and `unique_id` in the API): unambiguous where a
/// span id alone is not, since span-log clients reuse short span ids (`root`, `llm-1`) in
/// every trace.
///
/// It encodes the trace and span ids themselves (URL-safe base64 of both, split by a control
/// character no id may contain), so it is stable across re-sends, needs no stored mapping and
/// resolves to a primary-key read in every store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogId(String);

const LOG_ID_SEPARATOR: char = '\u{1f}';

impl LogId {
    /// The id of span `span` of trace `trace`.
    pub fn of(trace: &TraceId, span: &SpanId) -> Self {
        use base64::Engine as _;
        let joined = format!("{}{LOG_ID_SEPARATOR}{}", trace.as_str(), span.as_str());
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(joined))
    }

    /// The trace and span a text names, when it is a log id; `None` for anything else (a bare
    /// span id, say), which callers then try as a span id.
    pub fn parse(raw: &str) -> Option<(TraceId, SpanId)> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw)
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (trace, span) = text.split_once(LOG_ID_SEPARATOR)?;
        Some((TraceId::try_from(trace).ok()?, SpanId::try_from(span).ok()?))
    }

    /// The id as the API shows it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One thing a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Send spans: every ingest route, nothing else. For applications, where keys leak most.
    Ingest,
    /// Read everything (lists, traces, spans, scores, exports, the dashboard); change nothing.
    Read,
    /// Everything, including deletes, updates of logs and scores.
    Admin,
}

impl Scope {
    /// Every scope, in the order listings print them.
    pub const ALL: [Scope; 3] = [Scope::Ingest, Scope::Read, Scope::Admin];

    /// The name users type and see.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Scope::Ingest => 1,
            Scope::Read => 2,
            Scope::Admin => 4,
        }
    }
}

/// Why text is not a set of scopes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}: scopes are ingest, read and admin (comma-separated)")]
pub struct ScopeError(pub String);

/// The scopes of a key: any of ingest, read and admin, never none. `admin` grants everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scopes(u8);

impl Scopes {
    /// Everything: the scope of keys created without one, and of every key made before scopes.
    pub const ADMIN: Scopes = Scopes(4);

    /// The scopes listed.
    pub fn of(scopes: &[Scope]) -> Option<Self> {
        let bits = scopes.iter().fold(0, |bits, scope| bits | scope.bit());
        (bits != 0).then_some(Self(bits))
    }

    /// Whether a key with these scopes may do what `needed` allows.
    pub fn allow(self, needed: Scope) -> bool {
        self.0 & (needed.bit() | Scope::Admin.bit()) != 0
    }

    /// Each scope held, in [`Scope::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .into_iter()
            .filter(move |scope| self.0 & scope.bit() != 0)
    }
}

impl fmt::Display for Scopes {
    /// Comma-separated, as stored and as `--scope` takes them: `ingest,read`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Scope::as_str).collect();
        f.write_str(&names.join(","))
    }
}

impl std::str::FromStr for Scopes {
    type Err = ScopeError;

    /// Comma-separated scope names, in any order and case, blanks ignored.
    fn from_str(raw: &str) -> Result<Self, ScopeError> {
        let mut scopes = Vec::new();
        for name in raw
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            let scope = Scope::ALL
                .into_iter()
                .find(|scope| scope.as_str().eq_ignore_ascii_case(name))
                .ok_or_else(|| ScopeError(name.to_owned()))?;
            scopes.push(scope);
        }
        Self::of(&scopes).ok_or_else(|| ScopeError(raw.to_owned()))
    }
}

/// Internal numeric id of a project (tenant); every stored row carries one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectId(pub i64);

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a string is not a valid project name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectNameError {
    /// The name is empty.
    #[error("project name must not be empty")]
    Empty,
    /// The name is longer than 64 characters.
    #[error("project name is {0} characters long, the limit is 64")]
    TooLong(usize),
    /// The name has a character outside `[A-Za-z0-9._-]`.
    #[error("project name may only contain letters, digits, '.', '_' and '-', found {0:?}")]
    BadCharacter(char),
}

/// A project (tenant) name: short, printable, safe in URLs and file names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectName(String);

impl ProjectName {
    /// The name of the project that a fresh installation creates its first key for.
    pub fn default_project() -> Self {
        Self("default".to_owned())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for ProjectName {
    type Err = ProjectNameError;
    fn from_str(raw: &str) -> Result<Self, ProjectNameError> {
        if raw.is_empty() {
            return Err(ProjectNameError::Empty);
        }
        let len = raw.chars().count();
        if len > 64 {
            return Err(ProjectNameError::TooLong(len));
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(ProjectNameError::BadCharacter(bad));
        }
        Ok(Self(raw.to_owned()))
    }
}

impl fmt::Display for ProjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A project as an authenticated request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Internal id, the tenant key of every row.
    pub id: ProjectId,
    /// Human name, as given to `keys create --project`.
    pub name: ProjectName,
}

/// The SHA-256 of an API key: the only form in which keys are stored or compared.
///
/// Keys are 256-bit random secrets, so a fast hash is enough; a slow password hash would only
/// add latency to every request.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ApiKeyHash([u8; 32]);

impl ApiKeyHash {
    /// Hashes a key as presented by a client.
    pub fn of_secret(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Rebuilds a hash from its stored bytes; `None` when the length is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The raw digest, as stored.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ApiKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeyHash({})", hex::encode(&self.0[..4]))
    }
}

/// The prefix every tracehouse key starts with, so leaked keys are recognisable in logs and scanners.
pub const API_KEY_PREFIX: &str = "th_";

/// Renders 32 random bytes as an API key. The caller supplies the randomness (core does no IO).
pub fn api_key_from_random(random: &[u8; 32]) -> String {
    format!("{API_KEY_PREFIX}{}", hex::encode(random))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_print_and_admin_grants_everything() {
        let ingest_read: Scopes = "read, Ingest".parse().unwrap();
        assert_eq!(ingest_read.to_string(), "ingest,read");
        assert!(ingest_read.allow(Scope::Ingest) && ingest_read.allow(Scope::Read));
        assert!(!ingest_read.allow(Scope::Admin));
        let read: Scopes = "read".parse().unwrap();
        assert!(!read.allow(Scope::Ingest));
        for scope in Scope::ALL {
            assert!(Scopes::ADMIN.allow(scope));
        }
        assert_eq!(Scopes::ADMIN.to_string(), "admin");
        assert_eq!("".parse::<Scopes>(), Err(ScopeError(String::new())));
        assert_eq!(
            "read,write".parse::<Scopes>(),
            Err(ScopeError("write".to_owned()))
        );
    }

    #[test]
    fn log_ids_name_one_span_of_one_trace_and_read_back() {
        let trace = TraceId::try_from("t-1").unwrap();
        let other = TraceId::try_from("t-2").unwrap();
        let root = SpanId::try_from("root").unwrap();
        let id = LogId::of(&trace, &root);
        assert_eq!(id.as_str(), "dC0xH3Jvb3Q");
        assert_ne!(id, LogId::of(&other, &root));
        assert_eq!(
            LogId::parse(id.as_str()),
            Some((trace.clone(), root.clone()))
        );
        // Ids with any printable text, slashes and unicode included, survive the round trip
        // and stay URL-safe.
        let odd_trace = TraceId::try_from("a/b?c=d é").unwrap();
        let odd_span = SpanId::try_from("🙂 +/").unwrap();
        let odd = LogId::of(&odd_trace, &odd_span);
        assert!(
            odd.as_str()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(LogId::parse(odd.as_str()), Some((odd_trace, odd_span)));
    }

    #[test]
    fn bare_span_ids_are_not_log_ids() {
        for raw in ["root", "llm-1", "a1b2c3d4e5f60718", "", "dC0x", "!!"] {
            assert_eq!(LogId::parse(raw), None, "{raw}");
        }
    }

    #[test]
    fn ids_accept_any_printable_string_up_to_the_limit() {
        assert_eq!(
            TraceId::try_from("trace_a2d0a4052e2042839da4bb72cbd0783f").map(|id| id.to_string()),
            Ok("trace_a2d0a4052e2042839da4bb72cbd0783f".to_owned())
        );
        assert!(SpanId::try_from("x".repeat(MAX_ID_LEN)).is_ok());
    }

    #[test]
    fn ids_reject_empty_long_and_control_characters() {
        assert_eq!(TraceId::try_from(""), Err(IdError::Empty));
        assert_eq!(TraceId::try_from("   "), Err(IdError::Empty));
        assert_eq!(
            SpanId::try_from("a".repeat(257)),
            Err(IdError::TooLong { len: 257 })
        );
        assert_eq!(SpanId::try_from("a\u{0}b"), Err(IdError::ControlCharacter));
    }

    #[test]
    fn project_names_are_restricted() {
        assert!("default".parse::<ProjectName>().is_ok());
        assert!("team-a.prod_1".parse::<ProjectName>().is_ok());
        assert_eq!("".parse::<ProjectName>(), Err(ProjectNameError::Empty));
        assert_eq!(
            "a b".parse::<ProjectName>(),
            Err(ProjectNameError::BadCharacter(' '))
        );
    }

    #[test]
    fn key_hash_is_stable_and_prefix_is_applied() {
        let key = api_key_from_random(&[7u8; 32]);
        assert!(key.starts_with("th_"));
        assert_eq!(key.len(), 3 + 64);
        assert_eq!(ApiKeyHash::of_secret(&key), ApiKeyHash::of_secret(&key));
        assert_ne!(
            ApiKeyHash::of_secret(&key),
            ApiKeyHash::of_secret("th_other")
        );
    }
}
