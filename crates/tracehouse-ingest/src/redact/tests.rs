use serde_json::json;
use tracehouse_core::testing::span;

use super::*;

const KEY: &str = "0123456789abcdef-test-key";

/// A rule set of one rule from its TOML, with a hash key.
fn rules(toml_rules: Value) -> Result<Arc<RuleSet>, RedactError> {
    let config = config_of(json!({"hash_key": KEY, "rules": toml_rules}));
    Redaction::compile(&config)
        .map(|redaction| Arc::clone(redaction.rules_for(&ProjectName::default_project())))
}

fn config_of(value: Value) -> RedactionConfig {
    serde_json::from_value(value).unwrap()
}

fn detector(name: &str) -> Arc<RuleSet> {
    rules(json!([{"detector": name}])).unwrap()
}

/// The text after redaction by `set`, as the input of a span.
fn redacted(set: &RuleSet, text: &str) -> String {
    let mut span = span("t", "s", None, json!({"input": text}));
    set.redact_span(&mut span);
    span.content["input"].as_str().unwrap().to_owned()
}

#[test]
fn emails_are_masked_and_the_text_around_them_kept() {
    let set = detector("email");
    assert_eq!(
        redacted(&set, "write to jane.doe+ai@mail.example.co.uk, please"),
        "write to [REDACTED:email], please"
    );
    assert_eq!(redacted(&set, "no address @ here"), "no address @ here");
}

#[test]
fn phone_numbers_need_a_country_code_or_separators() {
    let set = detector("phone");
    for (text, expected) in [
        ("call +1 415 555 0132 now", "call [REDACTED:phone] now"),
        ("call +14155550132.", "call [REDACTED:phone]."),
        ("(415) 555-0132 is home", "[REDACTED:phone] is home"),
        ("office 415-555-0132", "office [REDACTED:phone]"),
        ("+44 20 7946 0958", "[REDACTED:phone]"),
        // Counts, timestamps and dates are not phone numbers.
        ("took 4155550132 ns", "took 4155550132 ns"),
        ("on 2024-01-15", "on 2024-01-15"),
    ] {
        assert_eq!(redacted(&set, text), expected, "{text}");
    }
}

#[test]
fn card_numbers_must_pass_luhn() {
    let set = detector("credit_card");
    assert_eq!(
        redacted(&set, "card 4111 1111 1111 1111 exp 12/29"),
        "card [REDACTED:credit_card] exp 12/29"
    );
    assert_eq!(
        redacted(&set, "amex 378282246310005."),
        "amex [REDACTED:credit_card]."
    );
    assert_eq!(
        redacted(&set, "mc 5555-5555-5555-4444"),
        "mc [REDACTED:credit_card]"
    );
    // One digit off: the checksum fails, so it is left alone.
    assert_eq!(
        redacted(&set, "card 4111 1111 1111 1112"),
        "card 4111 1111 1111 1112"
    );
    assert!(detectors::passes_luhn("4012888888881881"));
    assert!(!detectors::passes_luhn("4012888888881882"));
    assert!(!detectors::passes_luhn("0000"));
}

#[test]
fn ip_addresses_v4_and_v6() {
    let set = detector("ip_address");
    assert_eq!(
        redacted(
            &set,
            "from 203.0.113.42:8080 via 2001:db8::8a2e:370:7334 ok"
        ),
        "from [REDACTED:ip_address]:8080 via [REDACTED:ip_address] ok"
    );
    assert_eq!(
        redacted(&set, "fe80:0:0:0:202:b3ff:fe1e:8329"),
        "[REDACTED:ip_address]"
    );
    assert_eq!(redacted(&set, "at 12:30:45, v1.2.3"), "at 12:30:45, v1.2.3");
    assert_eq!(redacted(&set, "999.1.1.1"), "999.1.1.1");
}

#[test]
fn api_keys_of_each_provider() {
    let set = detector("api_key");
    for (secret, around) in [
        ("sk-proj-abcDEF1234567890abcdef1234", "key=%s;"),
        ("sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv-_12", "\"%s\""),
        ("AKIAIOSFODNN7EXAMPLE", "aws %s done"),
        ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "(%s)"),
    ] {
        let text = around.replace("%s", secret);
        assert_eq!(
            redacted(&set, &text),
            around.replace("%s", "[REDACTED:api_key]"),
            "{secret}"
        );
    }
    assert_eq!(
        redacted(&set, "task-manager sk-short"),
        "task-manager sk-short"
    );
}

#[test]
fn jwts_and_bearer_tokens() {
    let jwt =
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    assert_eq!(
        redacted(&detector("jwt"), &format!("token: {jwt}!")),
        "token: [REDACTED:jwt]!"
    );
    // The word Bearer stays, so the text still reads as an authorization header.
    assert_eq!(
        redacted(
            &detector("bearer_token"),
            "Authorization: Bearer abc123DEF456ghi789_xyz\nnext"
        ),
        "Authorization: Bearer [REDACTED:bearer_token]\nnext"
    );
    assert_eq!(
        redacted(&detector("bearer_token"), "bearer of bad news"),
        "bearer of bad news"
    );
}

#[test]
fn custom_regexes_with_a_secret_group() {
    let set = rules(json!([
        {"name": "employee", "regex": "EMP-[0-9]{6}"},
        {"name": "password", "regex": "password=(?P<secret>[^&\\s]+)"},
    ]))
    .unwrap();
    assert_eq!(
        redacted(&set, "EMP-123456 logged in with password=hunter2&next=1"),
        "[REDACTED:employee] logged in with password=[REDACTED:password]&next=1"
    );
}

#[test]
fn hashes_are_stable_keyed_and_distinct() {
    let hashing = |key: &str| {
        let config = config_of(json!({
            "hash_key": key,
            "rules": [{"detector": "email", "action": "hash"}],
        }));
        let redaction = Redaction::compile(&config).unwrap();
        Arc::clone(redaction.rules_for(&ProjectName::default_project()))
    };
    let set = hashing(KEY);
    let first = redacted(&set, "a@example.com");
    assert!(first.starts_with("[HASH:email:"), "{first}");
    assert_eq!(first.len(), "[HASH:email:]".len() + 12);
    assert_eq!(
        redacted(&set, "from a@example.com to b@example.com"),
        format!("from {first} to {}", redacted(&set, "b@example.com"))
    );
    assert_ne!(redacted(&set, "b@example.com"), first);
    let other_key = hashing("another-key-of-16-bytes");
    assert_ne!(redacted(&other_key, "a@example.com"), first);
    // Redacting again leaves a hash token as it is.
    assert_eq!(redacted(&set, &first), first);
}

#[test]
fn drop_removes_the_field_that_holds_a_match() {
    let set = rules(json!([{"detector": "email", "action": "drop"}])).unwrap();
    let mut span = span(
        "t",
        "s",
        None,
        json!({
            "input": "mail me at a@example.com",
            "output": "fine",
            "prompt_messages": [
                {"role": "user", "content": "I am a@example.com"},
                {"role": "assistant", "content": "hello"},
            ],
            "tags": ["a@example.com", "kept"],
            "customer_identifier": "a@example.com",
        }),
    );
    let counts = set.redact_span(&mut span);
    assert_eq!(counts.of("email"), 4);
    assert!(!span.content.contains_key("input"));
    assert_eq!(span.content["output"], json!("fine"));
    assert_eq!(
        span.content["prompt_messages"],
        json!([{"role": "user"}, {"role": "assistant", "content": "hello"}])
    );
    assert_eq!(span.content["tags"], json!(["kept"]));
    assert_eq!(span.grouping.customer_identifier, None);
}

#[test]
fn scopes_choose_where_a_rule_looks() {
    let set = rules(json!([
        {"name": "in_only", "regex": "SECRET-[0-9]+", "fields": ["input"]},
        {"name": "msg_only", "regex": "MSG-[0-9]+", "fields": ["messages"]},
        {"name": "meta_user", "regex": "META-[0-9]+", "fields": ["metadata"], "metadata_keys": ["user"]},
        {"name": "everywhere", "regex": "ALL-[0-9]+", "fields": ["all"]},
    ]))
    .unwrap();
    let mut span = span(
        "ALL-7",
        "ALL-8",
        Some("ALL-9"),
        json!({
            "span_name": "step ALL-1",
            "error_message": "failed for ALL-2",
            "input": {"q": "SECRET-1 MSG-1 ALL-3"},
            "output": "SECRET-2 MSG-2",
            "completion_message": {"role": "assistant", "content": "MSG-3 SECRET-3"},
            "metadata": {"user": "META-1", "other": "META-2", "nested": {"x": "ALL-4"}},
            "note": "ALL-5",
            "thread_identifier": "ALL-6",
        }),
    );
    let counts = set.redact_span(&mut span);
    assert_eq!(
        span.content["input"],
        json!({"q": "[REDACTED:in_only] MSG-1 [REDACTED:everywhere]"})
    );
    assert_eq!(span.content["output"], json!("SECRET-2 MSG-2"));
    assert_eq!(
        span.content["completion_message"]["content"],
        json!("[REDACTED:msg_only] SECRET-3")
    );
    assert_eq!(
        span.content["metadata"],
        json!({"user": "[REDACTED:meta_user]", "other": "META-2", "nested": {"x": "[REDACTED:everywhere]"}})
    );
    assert_eq!(span.content["note"], json!("[REDACTED:everywhere]"));
    assert_eq!(span.name, "step [REDACTED:everywhere]");
    assert_eq!(
        span.error_message.as_deref(),
        Some("failed for [REDACTED:everywhere]")
    );
    assert_eq!(
        span.grouping.thread_identifier.as_deref(),
        Some("[REDACTED:everywhere]")
    );
    assert_eq!(counts.of("everywhere"), 6);
    assert_eq!(counts.of("in_only"), 1);
    assert_eq!(counts.of("msg_only"), 1);
    assert_eq!(counts.of("meta_user"), 1);
    // Ids are never rewritten, even when a rule would match them.
    assert_eq!(span.trace_id.as_str(), "ALL-7");
    assert_eq!(span.span_id.as_str(), "ALL-8");
    assert_eq!(
        span.parent_id.map(|id| id.as_str().to_owned()).as_deref(),
        Some("ALL-9")
    );
}

#[test]
fn too_deep_values_are_removed_rather_than_kept_unread() {
    let set = detector("email");
    let mut deep = json!("a@example.com");
    for _ in 0..MAX_DEPTH + 5 {
        deep = json!([deep]);
    }
    let mut span = span("t", "s", None, json!({"input": "x", "blob": "y"}));
    span.content.insert("blob".to_owned(), deep);
    set.redact_span(&mut span);
    // What lies past the bound is cut off; the levels above it stay.
    let blob = serde_json::to_string(&span.content["blob"]).unwrap();
    assert!(!blob.contains("example.com"), "{blob}");
    assert!(blob.starts_with("[[[["), "{blob}");
    assert_eq!(span.content["input"], json!("x"));
}

#[test]
fn bad_rules_are_refused_naming_the_rule() {
    let error = |rules_json: Value| rules(rules_json).unwrap_err().to_string();
    let message = error(json!([{"name": "ticket", "regex": "TICKET-(["}]));
    assert!(
        message.starts_with("redaction rule \"ticket\": invalid regex:"),
        "{message}"
    );
    assert_eq!(
        error(json!([{"detector": "email"}, {"detector": "email"}])),
        "redaction rule \"email\" is defined twice"
    );
    assert_eq!(
        error(json!([{"regex": "x"}])),
        "redaction rule #1: a rule with a regex needs a name"
    );
    assert_eq!(
        error(json!([{"name": "both", "detector": "jwt", "regex": "x"}])),
        "redaction rule \"both\": give exactly one of detector = \"...\" or regex = \"...\""
    );
    assert_eq!(
        error(json!([{"name": "bad name", "regex": "x"}])),
        "redaction rule \"bad name\": names are 1 to 64 ASCII letters, digits, '_' or '-' (they appear in masks and metric labels)"
    );
    assert_eq!(
        error(json!([{"detector": "jwt", "fields": ["input"], "metadata_keys": ["a"]}])),
        "redaction rule \"jwt\": metadata_keys needs \"metadata\" among the fields"
    );
    let no_key = Redaction::compile(&config_of(json!({
        "rules": [{"name": "customer", "detector": "email", "action": "hash"}],
    })))
    .unwrap_err()
    .to_string();
    assert!(
        no_key.starts_with(
            "redaction rule \"customer\" uses action \"hash\" but the rules file has no hash_key"
        ),
        "{no_key}"
    );
    let short = Redaction::compile(&config_of(json!({"hash_key": "short"}))).unwrap_err();
    assert_eq!(
        short.to_string(),
        "redaction hash_key is 5 bytes; use at least 16"
    );
}

#[test]
fn projects_add_and_override_rules() {
    let config = config_of(json!({
        "rules": [{"detector": "email"}, {"detector": "ip_address"}],
        "projects": {
            "support": {"rules": [
                {"detector": "email", "fields": ["output"]},
                {"name": "ticket", "regex": "T-[0-9]{4}"},
            ]},
            "raw": {"inherit": false},
        },
    }));
    let redaction = Redaction::compile(&config).unwrap();
    let for_project = |name: &str| Arc::clone(redaction.rules_for(&name.parse().unwrap()));
    let text = "a@example.com 10.0.0.1 T-1234";
    assert_eq!(
        redacted(&for_project("default"), text),
        "[REDACTED:email] [REDACTED:ip_address] T-1234"
    );
    // The project's email rule replaced the shared one and looks at output only.
    assert_eq!(
        redacted(&for_project("support"), text),
        "a@example.com [REDACTED:ip_address] [REDACTED:ticket]"
    );
    assert_eq!(redacted(&for_project("raw"), text), text);
    let bad = Redaction::compile(&config_of(json!({
        "projects": {"support": {"rules": [{"name": "ticket", "regex": "("}]}},
    })))
    .unwrap_err()
    .to_string();
    assert!(
        bad.starts_with("project \"support\": redaction rule \"ticket\": invalid regex"),
        "{bad}"
    );
}

#[test]
fn every_builtin_compiles_into_one_set() {
    let all: Vec<Value> = Detector::ALL
        .iter()
        .map(|detector| json!({"detector": detector.name()}))
        .collect();
    let set = rules(Value::Array(all)).unwrap();
    assert_eq!(set.rules.len(), 7);
    let text = "Hi, I'm jo@example.org (+1 415 555 0132), card 4242 4242 4242 4242, host 192.168.1.20, \
                key sk-ant-api03-abcdefghijklmnopqrstuv, Authorization: Bearer abcdefghijklmnop1234";
    assert_eq!(
        redacted(&set, text),
        "Hi, I'm [REDACTED:email] ([REDACTED:phone]), card [REDACTED:credit_card], host [REDACTED:ip_address], \
         key [REDACTED:api_key], Authorization: Bearer [REDACTED:bearer_token]"
    );
}
