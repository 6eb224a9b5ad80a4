//! OTLP/gRPC ingest: `opentelemetry.proto.collector.trace.v1.TraceService/Export`, the same
//! export as OTLP/HTTP's `/v1/traces` (key, limits, partial success, mapping), for collectors
//! and SDKs that default to gRPC.
//!
//! The request arrives as the parsed `ExportTraceServiceRequest`; it goes through the same
//! `ingest_api::otlp::ingest_export` as an OTLP/HTTP body, with the decoder that takes the
//! message, so a span stores identically through either transport.
//! Failures are the same `ApiError`s as on HTTP, turned into gRPC statuses in one place
//! ([`status_of`]). Besides this module and `tracehouse-ingest`, nothing names OTLP types.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService as OtlpTraceService, TraceServiceServer as OtlpTraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest as OtlpExportRequest,
    ExportTraceServiceResponse as OtlpExportResponse,
};
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tower::Service;
use tower_http::timeout::TimeoutBody;
use tracehouse_core::Scope;
use tracehouse_ingest::otlp::{decode_export_request, export_response};

use crate::AppState;
use crate::auth::authenticate;
use crate::error::ApiError;
use crate::ingest_api::otlp::ingest_export;

/// The method's path, also its `route` label in the request metrics.
const EXPORT_ROUTE: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Room for the gRPC frame header (flag and length) beyond the body limit.
const FRAME_HEADER_BYTES: usize = 5;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Serves OTLP/gRPC on `listener` until `shutdown` completes, then lets in-flight exports
/// finish (their writes commit before they are answered).
pub async fn serve_grpc(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let header_limit = u32::try_from(state.limits.max_header_bytes).unwrap_or(u32::MAX);
    tonic::transport::Server::builder()
        .http2_max_header_list_size(header_limit)
        .serve_with_incoming_shutdown(grpc_service(state), TcpIncoming::from(listener), shutdown)
        .await
        .map_err(std::io::Error::other)
}

/// The OTLP trace service over `state`, for a tonic server: gzip in and out, messages up to
/// the inflated-body limit, and the HTTP API's bound on requests in flight and body timeout.
pub fn grpc_service(state: AppState) -> GrpcService {
    let limits = state.limits;
    let inner = OtlpTraceServiceServer::new(TraceExport {
        state: state.clone(),
    })
    .accept_compressed(CompressionEncoding::Gzip)
    .send_compressed(CompressionEncoding::Gzip)
    // tonic checks this limit against a message as sent and again as inflated; the size as
    // sent is held to the body limit by `GrpcService::call`.
    .max_decoding_message_size(limits.max_inflated_bytes);
    GrpcService { inner, state }
}

/// The OTLP trace service with the server's admission rules in front of it; build it with
/// [`grpc_service`].
#[derive(Clone)]
pub struct GrpcService {
    inner: OtlpTraceServiceServer<TraceExport>,
    state: AppState,
}

impl NamedService for GrpcService {
    const NAME: &'static str = <OtlpTraceServiceServer<TraceExport> as NamedService>::NAME;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl Service<axum::http::Request<tonic::body::Body>> for GrpcService {
    type Response = axum::http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<axum::http::Request<tonic::body::Body>>::poll_ready(&mut self.inner, context)
    }

    fn call(&mut self, request: axum::http::Request<tonic::body::Body>) -> Self::Future {
        // The slot is taken before the message is read, so waiting exports hold no bodies.
        let permit = self.state.guard.try_enter();
        let request = request.map(|body| limit_body(body, &self.state));
        // Readiness was polled on `self.inner`; the clone takes its place, as tower asks.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let state = self.state.clone();
        Box::pin(async move {
            let Some(_permit) = permit else {
                let status =
                    ApiError::Unavailable("too many requests in flight; retry shortly".to_owned());
                record(&state, &status, Instant::now());
                return Ok(status_of(status).into_http());
            };
            inner.call(request).await
        })
    }
}

/// The request body held to the HTTP API's body limit and body timeout, failing with the
/// status an exporter should see.
fn limit_body(body: tonic::body::Body, state: &AppState) -> tonic::body::Body {
    let limits = state.limits;
    let timed = TimeoutBody::new(limits.request_body_timeout, body);
    let limited = Limited::new(
        timed,
        limits.max_body_bytes.saturating_add(FRAME_HEADER_BYTES),
    );
    tonic::body::Body::new(limited.map_err(move |error: BoxError| {
        if error.is::<LengthLimitError>() {
            return status_of(ApiError::PayloadTooLarge {
                limit: limits.max_body_bytes,
            });
        }
        let timed_out = std::iter::successors(
            Some(error.as_ref() as &(dyn std::error::Error + 'static)),
            |error| error.source(),
        )
        .any(|cause| cause.is::<tower_http::timeout::TimeoutError>());
        if timed_out {
            return status_of(ApiError::RequestTimeout(format!(
                "the request body did not arrive within {} s",
                limits.request_body_timeout.as_secs()
            )));
        }
        Status::from_error(error)
    }))
}

/// The `TraceService` implementation.
#[derive(Clone)]
struct TraceExport {
    state: AppState,
}

#[tonic::async_trait]
impl OtlpTraceService for TraceExport {
    async fn export(
        &self,
        request: tonic::Request<OtlpExportRequest>,
    ) -> Result<tonic::Response<OtlpExportResponse>, Status> {
        let started = Instant::now();
        let answer = self.export_spans(request).await;
        match &answer {
            Ok(_) => self.state.guard.metrics.request_answered(
                EXPORT_ROUTE.to_owned(),
                "POST".to_owned(),
                200,
                started.elapsed(),
            ),
            Err(error) => record(&self.state, error, started),
        }
        answer.map(tonic::Response::new).map_err(status_of)
    }
}

impl TraceExport {
    async fn export_spans(
        &self,
        request: tonic::Request<OtlpExportRequest>,
    ) -> Result<OtlpExportResponse, ApiError> {
        let (metadata, _, message) = request.into_parts();
        let project = authenticate(&self.state, metadata.as_ref(), Some(Scope::Ingest))
            .await?
            .project;
        let outcome = ingest_export(&self.state, &project, message, decode_export_request).await?;
        Ok(export_response(outcome.rejected_spans, &outcome.message))
    }
}

/// Counts an export that failed in the request metrics, under the HTTP status its error has on
/// the HTTP API.
fn record(state: &AppState, error: &ApiError, started: Instant) {
    state.guard.metrics.request_answered(
        EXPORT_ROUTE.to_owned(),
        "POST".to_owned(),
        error.status().as_u16(),
        started.elapsed(),
    );
}

/// The gRPC status of each `ApiError`, with the codes OTLP exporters act on: `UNAVAILABLE`
/// (retried), `RESOURCE_EXHAUSTED` with `RetryInfo` (retried after the wait) or without it
/// (not retried: the request is over a limit), `INVALID_ARGUMENT` and `UNAUTHENTICATED` (never
/// retried).
fn status_of(error: ApiError) -> Status {
    let message = match &error {
        ApiError::Internal(cause) => {
            tracing::error!(error = %cause, route = EXPORT_ROUTE, "request failed");
            "internal error; the server log has the cause".to_owned()
        }
        ApiError::Unavailable(cause) => {
            tracing::warn!(error = %cause, route = EXPORT_ROUTE, "store unavailable");
            error.to_string()
        }
        other => other.to_string(),
    };
    let retry_after =
        |seconds: u64| ErrorDetails::with_retry_info(Some(Duration::from_secs(seconds)));
    match error {
        ApiError::BadRequest(_) | ApiError::UnsupportedMediaType(_) => {
            Status::invalid_argument(message)
        }
        ApiError::Unauthorized(_) => Status::unauthenticated(message),
        ApiError::Forbidden(_) => Status::permission_denied(message),
        ApiError::NotFound(_) => Status::not_found(message),
        ApiError::Ambiguous { .. } => Status::failed_precondition(message),
        ApiError::MethodNotAllowed(_) => Status::unimplemented(message),
        ApiError::PayloadTooLarge { .. }
        | ApiError::TooManyItems { .. }
        | ApiError::HeadersTooLarge { .. } => Status::resource_exhausted(message),
        ApiError::TooManyRequests { retry_after_secs } => Status::with_error_details(
            Code::ResourceExhausted,
            message,
            retry_after(retry_after_secs),
        ),
        ApiError::RequestTimeout(_) => Status::deadline_exceeded(message),
        ApiError::Unavailable(_) => {
            Status::with_error_details(Code::Unavailable, message, retry_after(1))
        }
        ApiError::Internal(_) => Status::internal(message),
    }
}

#[cfg(test)]
mod tests {
    use tracehouse_core::StoreError;

    use super::*;

    #[test]
    fn errors_map_to_the_codes_otlp_exporters_act_on() {
        let cases = [
            (
                ApiError::Unauthorized("no key".to_owned()),
                Code::Unauthenticated,
            ),
            (
                ApiError::BadRequest("span 2: name".to_owned()),
                Code::InvalidArgument,
            ),
            (
                ApiError::PayloadTooLarge { limit: 10 },
                Code::ResourceExhausted,
            ),
            (
                ApiError::TooManyItems { count: 3, limit: 2 },
                Code::ResourceExhausted,
            ),
            (
                ApiError::TooManyRequests {
                    retry_after_secs: 3,
                },
                Code::ResourceExhausted,
            ),
            (
                ApiError::from(StoreError::Unavailable {
                    reason: "write queue full".to_owned(),
                }),
                Code::Unavailable,
            ),
            (
                ApiError::Internal("disk on fire".to_owned()),
                Code::Internal,
            ),
        ];
        for (error, code) in cases {
            let shown = error.to_string();
            let status = status_of(error);
            assert_eq!(status.code(), code, "{shown}");
            if code != Code::Internal {
                assert_eq!(status.message(), shown);
            }
        }
    }

    #[test]
    fn internal_causes_stay_in_the_log() {
        let status = status_of(ApiError::Internal("disk on fire".to_owned()));
        assert!(!status.message().contains("disk"), "{}", status.message());
    }

    #[test]
    fn waits_travel_as_retry_info() {
        let status = status_of(ApiError::TooManyRequests {
            retry_after_secs: 3,
        });
        assert_eq!(
            status
                .get_details_retry_info()
                .and_then(|info| info.retry_delay),
            Some(Duration::from_secs(3))
        );
        let status = status_of(ApiError::PayloadTooLarge { limit: 10 });
        assert!(status.get_details_retry_info().is_none());
    }
}
