//! OTLP/gRPC ingest end to end: the generated tonic client against the real gRPC listener, read
//! back through the HTTP API and compared with the same export over OTLP/HTTP.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span as OtlpSpan};
use prost::Message as _;
use reqwest::StatusCode;
use serde_json::Value;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tracehouse_server::Limits;

use crate::util::{Backend, TestServer, fixture_bytes, on_every_store};

on_every_store!(
    grpc_export_reads_back_like_otlp_http,
    grpc_gzip_and_keys,
    grpc_partial_success,
);

/// How the key travels in a request's metadata.
enum Key<'a> {
    /// `authorization: Bearer <key>`.
    Bearer(&'a str),
    /// `x-api-key: <key>`.
    XApi(&'a str),
    Missing,
}

impl TestServer {
    async fn grpc_client(&self) -> TraceServiceClient<Channel> {
        TraceServiceClient::connect(self.grpc_base.clone())
            .await
            .unwrap()
    }

    async fn grpc_export(
        &self,
        request: ExportTraceServiceRequest,
        key: Key<'_>,
        gzip: bool,
    ) -> Result<ExportTraceServiceResponse, Status> {
        let mut client = self.grpc_client().await;
        if gzip {
            client = client
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip);
        }
        let mut request = tonic::Request::new(request);
        match key {
            Key::Bearer(key) => {
                request
                    .metadata_mut()
                    .insert("authorization", format!("Bearer {key}").parse().unwrap());
            }
            Key::XApi(key) => {
                request
                    .metadata_mut()
                    .insert("x-api-key", key.parse().unwrap());
            }
            Key::Missing => {}
        }
        client
            .export(request)
            .await
            .map(tonic::Response::into_inner)
    }

    /// The trace as `key`'s project reads it.
    async fn trace_as(&self, trace_id: &str, key: &str) -> Value {
        let (status, body) = self
            .get_with_key(&format!("/api/traces/{trace_id}/"), key)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

/// The vendor SDK's protobuf capture, as the message a gRPC exporter sends.
fn sdk_capture() -> ExportTraceServiceRequest {
    ExportTraceServiceRequest::decode(fixture_bytes("otlp-protobuf-sdk-capture.pb").as_slice())
        .unwrap()
}

fn span(trace: u8, id: u8, name: &str) -> OtlpSpan {
    OtlpSpan {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        name: name.to_owned(),
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_001_000_000_000,
        ..OtlpSpan::default()
    }
}

fn request_of(spans: Vec<OtlpSpan>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

fn trace_id_of(trace: u8) -> String {
    hex::encode([trace; 16])
}

/// The same capture over gRPC (project `default`) and over OTLP/HTTP protobuf (another
/// project) reads back as the same trace, field for field.
async fn grpc_export_reads_back_like_otlp_http(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let request = sdk_capture();
    let trace_id = hex::encode(&request.resource_spans[0].scope_spans[0].spans[0].trace_id);

    let answer = server
        .grpc_export(request, Key::Bearer(&server.key), false)
        .await
        .unwrap();
    assert_eq!(answer.partial_success, None, "all spans stored");

    let http_key = server.key_for("http-twin").await;
    let response = server
        .client
        .post(server.url("/v1/traces"))
        .bearer_auth(&http_key)
        .header("content-type", "application/x-protobuf")
        .body(fixture_bytes("otlp-protobuf-sdk-capture.pb"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let over_grpc = server.trace_as(&trace_id, &server.key).await;
    let over_http = server.trace_as(&trace_id, &http_key).await;
    assert_eq!(over_grpc["span_count"], 6, "{over_grpc}");
    assert_eq!(over_grpc["name"], "capture_workflow.workflow");
    assert_eq!(over_grpc["error_count"], 1);
    assert_eq!(over_grpc["llm_call_count"], 1);
    assert_eq!(over_grpc, over_http);

    // Span lists answer alike too, filters included.
    let filter =
        serde_json::json!({"filters": {"model": {"operator": "", "value": ["gpt-4o-mini"]}}});
    let list = |key: String| {
        let server = &server;
        let filter = filter.clone();
        async move {
            let response = server
                .client
                .post(server.url("/api/request-logs/list/"))
                .bearer_auth(key)
                .json(&filter)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()
        }
    };
    let grpc_list = list(server.key.clone()).await;
    assert_eq!(grpc_list["count"], 1, "{grpc_list}");
    assert_eq!(grpc_list["results"][0]["model"], "gpt-4o-mini");
    assert_eq!(grpc_list, list(http_key).await);
}

/// gzip both ways, the key in `authorization` or `x-api-key`; a missing or wrong key is
/// UNAUTHENTICATED and stores nothing.
async fn grpc_gzip_and_keys(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let answer = server
        .grpc_export(sdk_capture(), Key::Bearer(&server.key), true)
        .await
        .unwrap();
    assert_eq!(answer.partial_success, None);
    // The JSON capture of the same SDK run has its own trace id; this is the protobuf one.
    let (_, list) = server.get("/api/traces/list/").await;
    assert_eq!(list["count"], 1, "{list}");

    server
        .grpc_export(
            request_of(vec![span(7, 1, "via x-api-key")]),
            Key::XApi(&server.key),
            false,
        )
        .await
        .unwrap();
    let trace = server.trace(&trace_id_of(7)).await;
    assert_eq!(trace["span_tree"][0]["span_name"], "via x-api-key");

    let missing = server
        .grpc_export(request_of(vec![span(8, 1, "no key")]), Key::Missing, false)
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated, "{missing:?}");
    assert!(missing.message().contains("missing API key"), "{missing:?}");
    let wrong = server
        .grpc_export(
            request_of(vec![span(8, 1, "wrong key")]),
            Key::Bearer("th_not_a_key"),
            true,
        )
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated, "{wrong:?}");
    assert_eq!(wrong.message(), "invalid or revoked API key");
    let (status, _) = server
        .get(&format!("/api/traces/{}/", trace_id_of(8)))
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "nothing stored without a key"
    );
    let (_, list) = server.get("/api/traces/list/").await;
    assert_eq!(list["count"], 2, "{list}");

    // A key without the ingest scope may not export, and nothing is stored.
    let reader = server.key_with_scopes("read").await;
    let denied = server
        .grpc_export(
            request_of(vec![span(9, 1, "read key")]),
            Key::Bearer(&reader),
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(
        denied.message().contains("needs the ingest scope"),
        "{denied:?}"
    );
    let ingester = server.key_with_scopes("ingest").await;
    server
        .grpc_export(
            request_of(vec![span(10, 1, "ingest key")]),
            Key::Bearer(&ingester),
            false,
        )
        .await
        .unwrap();
    let (_, list) = server.get("/api/traces/list/").await;
    assert_eq!(list["count"], 3, "{list}");
}

/// One bad span: the others are stored and the answer's partial success names the bad one.
async fn grpc_partial_success(backend: Backend) {
    let server = TestServer::start_on(backend).await;
    let mut bad = span(9, 2, "short trace id");
    bad.trace_id = vec![1, 2];
    let request = request_of(vec![span(9, 1, "good"), bad, span(9, 3, "good too")]);
    let answer = server
        .grpc_export(request, Key::Bearer(&server.key), false)
        .await
        .unwrap();
    let partial = answer.partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 1);
    assert_eq!(
        partial.error_message,
        "span 1: trace_unique_id must be 16 bytes (32 hex digits), got 2 bytes"
    );
    let trace = server.trace(&trace_id_of(9)).await;
    assert_eq!(trace["span_count"], 2, "{trace}");
    let names: Vec<&str> = trace["span_tree"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| node["span_name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "two roots: {trace}");
    assert!(
        names.contains(&"good") && names.contains(&"good too"),
        "{names:?}"
    );
}

/// Limits hold on gRPC as on HTTP: a message over the body limit, one that inflates past the
/// inflated limit, and a batch over the span limit are refused with a status, and the server
/// goes on answering.
#[tokio::test]
async fn grpc_limits() {
    let server = TestServer::start_with_limits(Limits {
        max_body_bytes: 4096,
        max_inflated_bytes: 16 * 1024,
        max_spans_per_request: 3,
        ..Limits::default()
    })
    .await;
    let big_name = "x".repeat(8 * 1024);
    let too_big = server
        .grpc_export(
            request_of(vec![span(1, 1, &big_name)]),
            Key::Bearer(&server.key),
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(too_big.code(), Code::ResourceExhausted, "{too_big:?}");
    assert!(too_big.message().contains("4096"), "{too_big:?}");

    // Compresses far below 4 KiB, inflates past 16 KiB.
    let bomb = "y".repeat(32 * 1024);
    let inflated = server
        .grpc_export(
            request_of(vec![span(2, 1, &bomb)]),
            Key::Bearer(&server.key),
            true,
        )
        .await
        .unwrap_err();
    assert_eq!(inflated.code(), Code::ResourceExhausted, "{inflated:?}");

    let many = (1..=4).map(|id| span(3, id, "many")).collect();
    let too_many = server
        .grpc_export(request_of(many), Key::Bearer(&server.key), false)
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Code::ResourceExhausted, "{too_many:?}");
    assert_eq!(
        too_many.message(),
        "batch has 4 items, the limit is 3 per request: split it"
    );

    for trace in [1, 2, 3] {
        let (status, _) = server
            .get(&format!("/api/traces/{}/", trace_id_of(trace)))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "trace {trace} stored");
    }
    // Still serving: a batch within every limit goes through, gzip included.
    let ok = server
        .grpc_export(
            request_of(vec![span(4, 1, "fits")]),
            Key::Bearer(&server.key),
            true,
        )
        .await
        .unwrap();
    assert_eq!(ok.partial_success, None);
    assert_eq!(server.trace(&trace_id_of(4)).await["span_count"], 1);
}

/// The per-key rate limit applies to gRPC exports, as RESOURCE_EXHAUSTED with RetryInfo so that
/// exporters come back after the wait.
#[tokio::test]
async fn grpc_rate_limit() {
    let server = TestServer::start_with_limits(Limits {
        rate_limit_per_second: Some(1),
        rate_limit_burst: Some(1),
        ..Limits::default()
    })
    .await;
    server
        .grpc_export(
            request_of(vec![span(5, 1, "first")]),
            Key::Bearer(&server.key),
            false,
        )
        .await
        .unwrap();
    let limited = server
        .grpc_export(
            request_of(vec![span(5, 2, "second")]),
            Key::Bearer(&server.key),
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(limited.code(), Code::ResourceExhausted, "{limited:?}");
    assert_eq!(
        limited.message(),
        "rate limit exceeded for this API key; retry in 1 s"
    );
    // Reads take from the same bucket: wait for the next token.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(server.trace(&trace_id_of(5)).await["span_count"], 1);
}

/// The binary: `serve --grpc-listen 127.0.0.1:0 --grpc-addr-file F` serves gRPC on the port it
/// writes; `--grpc-listen off` binds nothing.
#[tokio::test]
async fn serve_binds_grpc_and_writes_its_address() {
    use crate::cli::ServeProcess;

    let dir = tempfile::tempdir().unwrap();
    let grpc_file = dir.path().join("grpc.addr");
    let server = ServeProcess::start_with_flags(
        &dir.path().join("data"),
        &[
            "--grpc-listen",
            "127.0.0.1:0",
            "--grpc-addr-file",
            grpc_file.to_str().unwrap(),
        ],
    );
    let key = server.printed_key().unwrap();
    let grpc_address = std::fs::read_to_string(&grpc_file).unwrap();
    let mut client = TraceServiceClient::connect(format!("http://{}", grpc_address.trim()))
        .await
        .unwrap();
    let mut request = tonic::Request::new(sdk_capture());
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    let answer = client.export(request).await.unwrap().into_inner();
    assert_eq!(answer.partial_success, None);
    let response = reqwest::Client::new()
        .get(format!("{}/api/traces/list/", server.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let list: Value = response.json().await.unwrap();
    assert_eq!(list["count"], 1, "{list}");
    assert!(server.terminate(), "clean exit with both listeners");

    let server =
        ServeProcess::start_with_flags(&dir.path().join("data-off"), &["--grpc-listen", "off"]);
    assert!(server.printed_key().is_some());
    assert!(server.terminate());
}
