//! The hostile-input corpus (`tests/corpus/cases`, written by `tests/corpus/generate.py`)
//! replayed against a real server: every case answers its expected 4xx (never a 5xx) with a JSON
//! body that names the problem, the valid items of a mixed batch are stored, and the server is
//! still healthy after each case.

use std::io::Write;
use std::path::PathBuf;

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use tracehouse_server::Limits;

use crate::util::{TestServer, gzip};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/cases")
}

fn repeated(spec: &Value) -> Vec<u8> {
    let text = |key: &str| spec[key].as_str().unwrap_or_default();
    let count = spec["count"].as_u64().unwrap() as usize;
    let mut out = Vec::with_capacity(text("head").len() + count * (text("unit").len() + 1));
    out.extend_from_slice(text("head").as_bytes());
    for index in 0..count {
        if index > 0 {
            out.extend_from_slice(text("sep").as_bytes());
        }
        out.extend_from_slice(text("unit").as_bytes());
    }
    out.extend_from_slice(text("tail").as_bytes());
    out
}

fn body_of(case: &Value) -> Vec<u8> {
    let spec = &case["body"];
    let raw = if let Some(text) = spec.get("text") {
        text.as_str().unwrap().as_bytes().to_vec()
    } else if let Some(encoded) = spec.get("base64") {
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap())
            .unwrap()
    } else if let Some(repeat) = spec.get("repeat") {
        repeated(repeat)
    } else if let Some(nest) = spec.get("nest") {
        let text = |key: &str| nest[key].as_str().unwrap_or_default();
        let depth = nest["depth"].as_u64().unwrap() as usize;
        let mut out = text("head").to_owned();
        out.push_str(&text("open").repeat(depth));
        out.push_str(&text("close").repeat(depth));
        out.push_str(text("tail"));
        out.into_bytes()
    } else if let Some(zeros) = spec.get("zeros") {
        vec![b'0'; zeros.as_u64().unwrap() as usize]
    } else if let Some(text) = spec.get("truncated_gzip") {
        let full = gzip(text.as_str().unwrap().as_bytes());
        full[..full.len() / 2].to_vec()
    } else {
        panic!("case has no body spec: {case}");
    };
    if case["gzip"] == true {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&raw).unwrap();
        encoder.finish().unwrap()
    } else {
        raw
    }
}

fn headers_of(case: &Value, key: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in case["headers"].as_object().unwrap() {
        let text = match value {
            Value::String(text) => text.clone(),
            fill => {
                let unit = fill["unit"].as_str().unwrap();
                let count = fill["count"].as_u64().unwrap() as usize;
                format!("{}{}", fill["fill"].as_str().unwrap(), unit.repeat(count))
            }
        };
        // Header values are bytes on the wire; non-ASCII cases send their Latin-1 bytes.
        let bytes: Vec<u8> = text.chars().map(|c| c as u32 as u8).collect();
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(&bytes).unwrap(),
        );
    }
    match case["auth"].as_str().unwrap_or("bearer") {
        "bearer" => {
            headers.insert("authorization", format!("Bearer {key}").parse().unwrap());
        }
        "wrong" => {
            headers.insert("authorization", "Bearer th_wrong".parse().unwrap());
        }
        "none" | "query" => {}
        other => panic!("unknown auth {other}"),
    }
    headers
}

/// Runs one case; returns a description of what went wrong, if anything.
async fn run_case(server: &TestServer, name: &str, case: &Value) -> Option<String> {
    let expect = &case["expect"];
    let mut url = server.url(case["path"].as_str().unwrap());
    if case["auth"] == "query" {
        let joiner = if url.contains('?') { '&' } else { '?' };
        url = format!("{url}{joiner}api_key={}", server.key);
    }
    let method = reqwest::Method::from_bytes(case["method"].as_str().unwrap().as_bytes()).unwrap();
    let response = server
        .client
        .request(method, &url)
        .headers(headers_of(case, &server.key))
        .body(body_of(case))
        .send()
        .await;
    let response = match response {
        Ok(response) => response,
        Err(error) => return Some(format!("{name}: no answer: {error}")),
    };
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    let expected = expect["status"].as_u64().unwrap() as u16;
    if status != expected {
        return Some(format!(
            "{name}: status {status}, expected {expected}: {text}"
        ));
    }
    if status >= 400 {
        let Ok(json) = serde_json::from_slice::<Value>(&body) else {
            return Some(format!("{name}: error answer is not JSON: {text}"));
        };
        let message = json["message"].as_str().unwrap_or_default();
        if message.is_empty() {
            return Some(format!("{name}: error answer has no message: {text}"));
        }
    }
    for needle in expect["contains"].as_array().into_iter().flatten() {
        let needle = needle.as_str().unwrap();
        if !text.contains(needle) {
            return Some(format!("{name}: answer does not name {needle:?}: {text}"));
        }
    }
    if let Some(rejected) = expect.get("rejected") {
        let json: Value = serde_json::from_slice(&body).unwrap_or_default();
        let got: Vec<(u64, String)> = json["rejected"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                (
                    r["index"].as_u64().unwrap_or(u64::MAX),
                    r["field"].as_str().unwrap_or("?").to_owned(),
                )
            })
            .collect();
        let want: Vec<(u64, String)> = rejected
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["index"].as_u64().unwrap(),
                    r["field"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        if got != want {
            return Some(format!("{name}: rejected {got:?}, expected {want:?}"));
        }
    }
    for span_id in expect["stored"].as_array().into_iter().flatten() {
        let span_id = span_id.as_str().unwrap();
        let (status, _) = server.get(&format!("/api/request-logs/{span_id}/")).await;
        if status != 200 {
            return Some(format!(
                "{name}: valid span {span_id} was not stored ({status})"
            ));
        }
    }
    let (health, _) = server.get("/healthz").await;
    if health != 200 {
        return Some(format!(
            "{name}: server unhealthy after the case ({health})"
        ));
    }
    None
}

#[tokio::test]
async fn every_hostile_request_gets_a_clear_4xx_and_the_server_stays_up() {
    let server = TestServer::start_with_limits(Limits {
        max_body_bytes: 4 * 1024 * 1024,
        max_inflated_bytes: 8 * 1024 * 1024,
        ..Limits::default()
    })
    .await;
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 200, "the corpus holds {} cases", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        let case: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        // Each case starts from a store without its spans, so "stored" proves this case.
        let _ = server
            .client
            .delete(server.url("/api/traces/corpus-trace/"))
            .bearer_auth(&server.key)
            .send()
            .await
            .unwrap();
        if let Some(failure) = run_case(&server, &name, &case).await {
            failures.push(failure);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
