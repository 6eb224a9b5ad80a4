//! Redaction at ingest: rules that find secrets and personal data in a span's text and mask,
//! hash or drop them, applied to decoded spans before anything stores or indexes them.
//!
//! A rules file ([`RedactionConfig`]) is compiled once into a [`Redaction`]: one [`RuleSet`]
//! per project that has rules of its own, and one for every other project. Each rule set holds
//! one `RegexSet` over all its rules, run once per string to learn which rules can match at
//! all, so a string without secrets costs one scan; only the rules that matched run their own
//! `Regex` to replace.

mod config;
mod detectors;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use regex::{Regex, RegexSet};
use serde_json::{Map, Value};
use sha2::Sha256;
use tracehouse_core::{ProjectName, Span};

pub use config::{
    Action, Detector, FieldScope, MIN_HASH_KEY_BYTES, ProjectRules, RedactError, RedactionConfig,
    RuleConfig,
};

/// Nesting deeper than this is not inspected; such a subtree is removed instead (fail closed),
/// so depth cannot smuggle a secret past the rules. Decoders already refuse far less nesting.
const MAX_DEPTH: usize = 256;

/// Content keys whose values are chat messages, tools or the raw request and response.
const MESSAGE_KEYS: &[&str] = &[
    "prompt_messages",
    "completion_message",
    "completion_messages",
    "messages",
    "tools",
    "span_tools",
    "tool_calls",
    "full_request",
    "full_response",
];

/// Hex digits of the HMAC shown in a hash token: 48 bits, so distinct values practically never
/// share a token while the token stays short.
const HASH_TOKEN_HEX_DIGITS: usize = 12;

/// Longest rule name: names appear in every mask and as a metric label.
const MAX_RULE_NAME: usize = 64;

/// Compiled rules for every project.
#[derive(Debug, Clone)]
pub struct Redaction {
    /// Rules of projects without a `[projects.NAME]` table.
    default: Arc<RuleSet>,
    /// Rules of projects with one.
    projects: HashMap<ProjectName, Arc<RuleSet>>,
}

impl Redaction {
    /// Checks a rules file and compiles its matchers; the error names the rule at fault.
    pub fn compile(config: &RedactionConfig) -> Result<Self, RedactError> {
        let hash_key = match config.hash_key.as_deref() {
            Some(key) if key.len() < MIN_HASH_KEY_BYTES => {
                return Err(RedactError::ShortHashKey { length: key.len() });
            }
            key => key.map(|key| Arc::<[u8]>::from(key.as_bytes())),
        };
        let default = RuleSet::compile(&config.rules, hash_key.clone())?;
        let mut projects = HashMap::new();
        for (name, project) in &config.projects {
            let project_name: ProjectName =
                name.parse().map_err(|error| RedactError::BadProject {
                    project: name.clone(),
                    reason: format!("{error}"),
                })?;
            let mut rules: Vec<RuleConfig> = if project.inherit {
                config.rules.clone()
            } else {
                Vec::new()
            };
            for rule in &project.rules {
                let replaced = rule_name(rule).and_then(|name| {
                    rules
                        .iter()
                        .position(|inherited| rule_name(inherited).as_deref() == Some(&name))
                });
                match replaced {
                    Some(index) => rules[index] = rule.clone(),
                    None => rules.push(rule.clone()),
                }
            }
            let rule_set = RuleSet::compile(&rules, hash_key.clone()).map_err(|error| {
                RedactError::InProject {
                    project: name.clone(),
                    source: Box::new(error),
                }
            })?;
            projects.insert(project_name, Arc::new(rule_set));
        }
        Ok(Self {
            default: Arc::new(default),
            projects,
        })
    }

    /// The rules that apply to `project`'s spans.
    pub fn rules_for(&self, project: &ProjectName) -> &Arc<RuleSet> {
        self.projects.get(project).unwrap_or(&self.default)
    }
}

/// A rule's name: as given, else its detector's.
fn rule_name(rule: &RuleConfig) -> Option<String> {
    rule.name
        .clone()
        .or_else(|| rule.detector.map(|detector| detector.name().to_owned()))
}

/// Where in a span a string sits, as far as rule scopes care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Input,
    Output,
    Messages,
    /// Under `metadata`; the rules of metadata keys are chosen per key.
    Metadata,
    /// Anywhere else: only `all` rules look here.
    Elsewhere,
}

/// One compiled rule.
#[derive(Debug)]
struct Rule {
    name: Arc<str>,
    regex: Regex,
    action: Action,
    /// Index of the group named `secret`, when only that part of a match is replaced.
    secret_group: Option<usize>,
    /// A check on the secret the regex cannot make (Luhn).
    validator: Option<fn(&str) -> bool>,
    scopes: Vec<FieldScope>,
    metadata_keys: Option<Vec<String>>,
}

impl Rule {
    fn applies_to(&self, place: Place, metadata_key: Option<&str>) -> bool {
        self.scopes.iter().any(|scope| match (scope, place) {
            (FieldScope::All, _) => true,
            (FieldScope::Input, Place::Input)
            | (FieldScope::Output, Place::Output)
            | (FieldScope::Messages, Place::Messages) => true,
            (FieldScope::Metadata, Place::Metadata) => match (&self.metadata_keys, metadata_key) {
                (None, _) => true,
                (Some(keys), Some(key)) => keys.iter().any(|allowed| allowed == key),
                (Some(_), None) => false,
            },
            _ => false,
        })
    }
}

/// The compiled rules of one project, applied in their order.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Every rule's regex, run once per string to learn which rules can match.
    matchers: RegexSet,
    /// Indexes of the rules for each place that does not depend on a metadata key.
    by_place: [Vec<usize>; 5],
    /// Whether some rule looks at named metadata keys only, so metadata rules are chosen per key.
    keyed_metadata: bool,
    /// The keyed hash, ready to be cloned per token (`None` when no rule hashes).
    hasher: Option<Hmac<Sha256>>,
}

impl RuleSet {
    fn compile(configs: &[RuleConfig], hash_key: Option<Arc<[u8]>>) -> Result<Self, RedactError> {
        let mut rules = Vec::with_capacity(configs.len());
        for (index, config) in configs.iter().enumerate() {
            let Some(name) = rule_name(config) else {
                return Err(match config.regex {
                    Some(_) => RedactError::Unnamed {
                        position: index + 1,
                    },
                    None => RedactError::PatternCount {
                        rule: format!("#{}", index + 1),
                    },
                });
            };
            let name_is_clean = !name.is_empty()
                && name.len() <= MAX_RULE_NAME
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !name_is_clean {
                return Err(RedactError::BadName { rule: name });
            }
            if rules.iter().any(|rule: &Rule| *rule.name == *name) {
                return Err(RedactError::Duplicate { rule: name });
            }
            let (pattern, validator) = match (config.detector, config.regex.as_deref()) {
                (Some(detector), None) => (
                    detectors::pattern(detector).to_owned(),
                    detectors::validator(detector),
                ),
                (None, Some(regex)) => (regex.to_owned(), None),
                _ => return Err(RedactError::PatternCount { rule: name }),
            };
            if config.fields.is_empty() {
                return Err(RedactError::NoFields { rule: name });
            }
            if config.metadata_keys.is_some()
                && !config
                    .fields
                    .iter()
                    .any(|scope| matches!(scope, FieldScope::Metadata | FieldScope::All))
            {
                return Err(RedactError::MetadataKeysWithoutMetadata { rule: name });
            }
            if config.action == Action::Hash && hash_key.is_none() {
                return Err(RedactError::MissingHashKey { rule: name });
            }
            let regex = Regex::new(&pattern).map_err(|error| RedactError::BadRegex {
                rule: name.clone(),
                error: Box::new(error),
            })?;
            let secret_group = regex
                .capture_names()
                .position(|group| group == Some("secret"));
            rules.push(Rule {
                name: Arc::from(name),
                regex,
                action: config.action,
                secret_group,
                validator,
                scopes: config.fields.clone(),
                metadata_keys: config.metadata_keys.clone(),
            });
        }
        let matchers = RegexSet::new(rules.iter().map(|rule| rule.regex.as_str()))
            .map_err(|error| RedactError::Matchers(Box::new(error)))?;
        let places = [
            Place::Input,
            Place::Output,
            Place::Messages,
            Place::Metadata,
            Place::Elsewhere,
        ];
        let by_place = places.map(|place| {
            (0..rules.len())
                .filter(|&index| rules[index].applies_to(place, None))
                .collect()
        });
        // HMAC takes keys of any length, so this fails only if the `hmac` crate changes that;
        // a rules file that hashes is then refused like one without a key.
        let hasher = match hash_key {
            Some(key) => Some(
                Hmac::<Sha256>::new_from_slice(&key)
                    .map_err(|_| RedactError::ShortHashKey { length: key.len() })?,
            ),
            None => None,
        };
        let keyed_metadata = rules.iter().any(|rule| rule.metadata_keys.is_some());
        Ok(Self {
            rules,
            matchers,
            by_place,
            keyed_metadata,
            hasher,
        })
    }

    /// Whether there are no rules at all (nothing to do for spans).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Redacts every span in place and counts what each rule did.
    pub fn redact_spans(&self, spans: &mut [Span]) -> RedactionCounts {
        let mut counts = vec![0; self.rules.len()];
        if !self.is_empty() {
            for span in spans {
                self.redact_into(span, &mut counts);
            }
        }
        self.counts(counts)
    }

    /// Redacts one span in place.
    pub fn redact_span(&self, span: &mut Span) -> RedactionCounts {
        self.redact_spans(std::slice::from_mut(span))
    }

    fn counts(&self, counts: Vec<u64>) -> RedactionCounts {
        RedactionCounts(
            self.rules
                .iter()
                .zip(counts)
                .filter(|(_, count)| *count > 0)
                .map(|(rule, count)| (Arc::clone(&rule.name), count))
                .collect(),
        )
    }

    fn redact_into(&self, span: &mut Span, counts: &mut [u64]) {
        let walker = Walker {
            set: self,
            counts: std::cell::RefCell::new(counts),
        };
        span.content.retain(|key, value| {
            let place = match key.as_str() {
                "input" => Place::Input,
                "output" => Place::Output,
                "metadata" => Place::Metadata,
                key if MESSAGE_KEYS.contains(&key) => Place::Messages,
                _ => Place::Elsewhere,
            };
            match (place, value) {
                // Metadata rules may be limited to some keys: choose them per top-level key.
                (Place::Metadata, Value::Object(metadata)) => {
                    metadata.retain(|metadata_key, value| {
                        let rules = walker.rules_at(Place::Metadata, Some(metadata_key));
                        !walker.value(value, &rules, 1)
                    });
                    true
                }
                (place, value) => {
                    let rules = walker.rules_at(place, None);
                    !walker.value(value, &rules, 0)
                }
            }
        });
        let all = &self.by_place[place_index(Place::Elsewhere)];
        if all.is_empty() {
            return;
        }
        // Typed text fields: only `all` rules reach them. Ids, times and numbers never change.
        if walker.text_field(&mut span.name, all) {
            span.name.clear();
        }
        let grouping = &mut span.grouping;
        for field in [
            &mut span.error_message,
            &mut span.workflow_name,
            &mut span.path,
            &mut grouping.customer_identifier,
            &mut grouping.session_identifier,
            &mut grouping.thread_identifier,
            &mut grouping.trace_group_identifier,
            &mut grouping.environment,
        ] {
            if let Some(text) = field {
                if walker.text_field(text, all) {
                    *field = None;
                }
            }
        }
    }

    /// The token that replaces `secret` found by `rule`.
    fn replacement(&self, rule: &Rule, secret: &str) -> String {
        match (&rule.action, &self.hasher) {
            (Action::Hash, Some(hasher)) => {
                let mut mac = hasher.clone();
                mac.update(secret.as_bytes());
                let digest = hex::encode(mac.finalize().into_bytes());
                let short = digest.get(..HASH_TOKEN_HEX_DIGITS).unwrap_or(&digest);
                format!("[HASH:{}:{short}]", rule.name)
            }
            _ => format!("[REDACTED:{}]", rule.name),
        }
    }

    /// Applies the `candidates` (rule indexes, in order) to one string. Returns whether the
    /// string must be dropped.
    fn redact_text(&self, text: &mut String, candidates: &[usize], counts: &mut [u64]) -> bool {
        if candidates.is_empty() {
            return false;
        }
        let hits = self.matchers.matches(text);
        if !hits.matched_any() {
            return false;
        }
        for &index in candidates {
            if !hits.matched(index) {
                continue;
            }
            let rule = &self.rules[index];
            let secrets: Vec<std::ops::Range<usize>> = match rule.secret_group {
                Some(group) => rule
                    .regex
                    .captures_iter(text)
                    .filter_map(|captures| captures.get(group))
                    .map(|secret| secret.range())
                    .collect(),
                None => rule.regex.find_iter(text).map(|m| m.range()).collect(),
            };
            let mut rewritten = String::new();
            let mut copied_up_to = 0;
            let mut found = 0;
            for secret in secrets {
                let Some(secret_text) = text.get(secret.clone()).filter(|s| !s.is_empty()) else {
                    continue;
                };
                if rule.validator.is_some_and(|valid| !valid(secret_text)) {
                    continue;
                }
                found += 1;
                if rule.action == Action::Drop {
                    break;
                }
                rewritten.push_str(&text[copied_up_to..secret.start]);
                rewritten.push_str(&self.replacement(rule, secret_text));
                copied_up_to = secret.end;
            }
            if found == 0 {
                continue;
            }
            counts[index] += found;
            if rule.action == Action::Drop {
                return true;
            }
            rewritten.push_str(&text[copied_up_to..]);
            *text = rewritten;
        }
        false
    }
}

fn place_index(place: Place) -> usize {
    match place {
        Place::Input => 0,
        Place::Output => 1,
        Place::Messages => 2,
        Place::Metadata => 3,
        Place::Elsewhere => 4,
    }
}

/// One span's walk: the rule set and the counts it adds to.
struct Walker<'a> {
    set: &'a RuleSet,
    // `Map::retain` lends its closure only `&mut` to one entry, so the counts travel beside it.
    counts: std::cell::RefCell<&'a mut [u64]>,
}

impl Walker<'_> {
    /// The rules for a place (and metadata key), in rule order.
    fn rules_at(&self, place: Place, metadata_key: Option<&str>) -> Cow<'_, [usize]> {
        match metadata_key {
            Some(key) if self.set.keyed_metadata => Cow::Owned(
                (0..self.set.rules.len())
                    .filter(|&index| self.set.rules[index].applies_to(place, Some(key)))
                    .collect(),
            ),
            _ => Cow::Borrowed(&self.set.by_place[place_index(place)]),
        }
    }

    fn text_field(&self, text: &mut String, rules: &[usize]) -> bool {
        self.set
            .redact_text(text, rules, &mut self.counts.borrow_mut())
    }

    /// Redacts every string in `value`; returns whether `value` itself must be dropped.
    fn value(&self, value: &mut Value, rules: &[usize], depth: usize) -> bool {
        if rules.is_empty() {
            return false;
        }
        if depth > MAX_DEPTH {
            return true;
        }
        match value {
            Value::String(text) => self.text_field(text, rules),
            Value::Array(items) => {
                items.retain_mut(|item| !self.value(item, rules, depth + 1));
                false
            }
            Value::Object(members) => {
                self.object(members, rules, depth + 1);
                false
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => false,
        }
    }

    fn object(&self, members: &mut Map<String, Value>, rules: &[usize], depth: usize) {
        members.retain(|_, member| !self.value(member, rules, depth));
    }
}

/// How many matches each rule replaced or dropped; only rules that matched are listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedactionCounts(Vec<(Arc<str>, u64)>);

impl RedactionCounts {
    /// `(rule name, matches)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(name, count)| (&**name, *count))
    }

    /// Whether nothing was redacted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Matches of one rule.
    pub fn of(&self, rule: &str) -> u64 {
        self.iter()
            .find(|(name, _)| *name == rule)
            .map_or(0, |(_, count)| count)
    }
}

#[cfg(test)]
mod tests;
