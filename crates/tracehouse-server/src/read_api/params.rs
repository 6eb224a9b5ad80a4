//! Parsing of list parameters (query string and JSON body) into the core query model.

use std::collections::HashMap;

use axum::http::{HeaderMap, Uri, header};
use serde_json::{Map, Value};
use tracehouse_core::Timestamp;
use tracehouse_core::groups::{CostSeries, GroupColumn, GroupQuery, Grouping, parse_group_filters};
use tracehouse_core::query::{
    Condition, FilterValue, Operator, Page, QueryError, SpanColumn, SpanField, SpanFilter,
    SpanQuery, TraceColumn, TraceQuery, parse_page, parse_sort, parse_span_field,
    parse_span_filters, parse_time_parameter, parse_trace_filters,
};

use crate::error::ApiError;

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        ApiError::BadRequest(error.to_string())
    }
}

/// List parameters from the query string, completed by the same keys in a JSON body
/// (the query string wins), plus the body's `filters`.
pub(crate) struct ListParams {
    values: HashMap<String, String>,
    filters: Value,
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

impl ListParams {
    pub(crate) fn new(query: HashMap<String, String>, body: &[u8]) -> Result<Self, ApiError> {
        let mut values = query;
        let mut filters = Value::Null;
        // GET requests carry the filters object as JSON text in `filters`.
        if let Some(raw) = values
            .remove("filters")
            .filter(|raw| !raw.trim().is_empty())
        {
            filters = serde_json::from_str(&raw)
                .map_err(|e| ApiError::BadRequest(format!("filters is not a JSON object: {e}")))?;
        }
        let trimmed = body.iter().position(|b| !b.is_ascii_whitespace());
        if trimmed.is_some() {
            let parsed: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::BadRequest(format!("body is not valid JSON: {e}")))?;
            let Value::Object(mut object) = parsed else {
                return Err(ApiError::BadRequest(
                    "body must be a JSON object like {\"filters\": {...}}".to_owned(),
                ));
            };
            if let Some(body_filters) = object.remove("filters") {
                filters = body_filters;
            }
            for (key, value) in object {
                if let Some(text) = scalar_text(&value) {
                    values.entry(key).or_insert(text);
                }
            }
        }
        Ok(Self { values, filters })
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn time(&self, key: &str) -> Result<Option<Timestamp>, ApiError> {
        Ok(self
            .get(key)
            .map(|raw| parse_time_parameter(key, raw))
            .transpose()?)
    }

    fn page(&self) -> Result<Page, ApiError> {
        Ok(parse_page(self.get("page"), self.get("page_size"))?)
    }

    /// The `filters` object completed by plain `field=value` query parameters (as the
    /// vendor's clients send `?customer_identifier=...`): each name `is_field` accepts becomes
    /// an equality filter unless `filters` already has that field. A `metadata__*` or
    /// `scores__*` value that reads as a number is matched as one.
    fn filters_with_query(&self, is_field: impl Fn(&str) -> bool) -> Value {
        const NOT_FILTERS: &[&str] = &[
            "page",
            "page_size",
            "sort_by",
            "search",
            "start_time",
            "end_time",
            "span_start_time",
            "span_end_time",
            "as_of",
            "environment",
            "cost_interval",
            "cost_buckets",
            SNAPSHOT_COUNT,
        ];
        let mut filters = match &self.filters {
            Value::Object(object) => object.clone(),
            // Anything else is refused by the filter parser, which names it.
            Value::Null => Map::new(),
            other => return other.clone(),
        };
        let mut names: Vec<&String> = self.values.keys().collect();
        names.sort();
        for name in names {
            let Some(raw) = self.get(name) else { continue };
            if NOT_FILTERS.contains(&name.as_str()) || filters.contains_key(name) || !is_field(name)
            {
                continue;
            }
            let value = match raw.parse::<f64>() {
                Ok(number)
                    if (name.starts_with("metadata__") || name.starts_with("scores__"))
                        && number.is_finite() =>
                {
                    serde_json::json!(number)
                }
                _ => Value::String(raw.to_owned()),
            };
            filters.insert(
                name.clone(),
                serde_json::json!({"operator": "", "value": [value]}),
            );
        }
        Value::Object(filters)
    }

    fn equals(value: &str) -> Vec<FilterValue> {
        vec![FilterValue::Text(value.to_owned())]
    }

    /// The trace list query.
    pub(super) fn trace_query(&self) -> Result<TraceQuery, ApiError> {
        let mut query = TraceQuery {
            page: self.page()?,
            ..self.trace_scope()?
        };
        if let Some(sort) = self.get("sort_by") {
            query.sort = parse_sort(sort, TraceColumn::from_api, TraceColumn::api_names())?;
        }
        let filters = self.filters_with_query(|name| {
            TraceColumn::from_api(name).is_some() || parse_span_field(name).is_ok()
        });
        parse_trace_filters(&filters, &mut query)?;
        Ok(query)
    }

    /// The threads or users list query: the traces counted are chosen as a trace list's are
    /// (time range, environment, search, trace and span filters), the groups by their own
    /// aggregates.
    pub(crate) fn group_query(&self, grouping: Grouping) -> Result<GroupQuery, ApiError> {
        let mut query = GroupQuery {
            page: self.page()?,
            traces: self.trace_scope()?,
            ..GroupQuery::new(grouping)
        };
        if let Some(sort) = self.get("sort_by") {
            query.sort = parse_sort(
                sort,
                |name| GroupColumn::from_api(name, grouping),
                GroupColumn::api_names(grouping),
            )?;
        }
        let filters = self.filters_with_query(|name| {
            GroupColumn::from_api(name, grouping).is_some()
                || TraceColumn::from_api(name).is_some()
                || parse_span_field(name).is_ok()
        });
        parse_group_filters(&filters, &mut query)?;
        query.cost_series = self.cost_series()?;
        Ok(query)
    }

    /// `cost_interval` (`hour`, `day` or `week`) and `cost_buckets` (1 to 400, default 30):
    /// each listed group's cost per bucket, the last bucket holding now.
    fn cost_series(&self) -> Result<Option<CostSeries>, ApiError> {
        let Some(interval) = self.get("cost_interval") else {
            return Ok(None);
        };
        let step_ns: i64 = match interval {
            "hour" => 3_600_000_000_000,
            "day" => 86_400_000_000_000,
            "week" => 7 * 86_400_000_000_000,
            other => {
                return Err(ApiError::BadRequest(format!(
                    "cost_interval must be hour, day or week, got {other:?}"
                )));
            }
        };
        let buckets = match self.get("cost_buckets") {
            None => 30,
            Some(raw) => raw
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=400).contains(n))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "cost_buckets must be a whole number from 1 to 400, got {raw:?}"
                    ))
                })?,
        };
        Ok(CostSeries::ending_at(crate::now(), step_ns, buckets))
    }

    /// What selects traces besides filters: time range, snapshot, environment, search, and the
    /// span time range.
    fn trace_scope(&self) -> Result<TraceQuery, ApiError> {
        let mut query = TraceQuery {
            start_from: self.time("start_time")?,
            start_to: self.time("end_time")?,
            as_of: self.time("as_of")?,
            ..TraceQuery::default()
        };
        if let Some(environment) = self.get("environment") {
            query.conditions.push(Condition {
                field: TraceColumn::Environment,
                operator: Operator::Equals,
                values: Self::equals(environment),
            });
        }
        query.spans.search = self.get("search").map(str::to_owned);
        // Traces with a span starting in this range (and matching the span filters on that
        // same span): what a dashboard bucket counts.
        query.spans.start_from = self.time("span_start_time")?;
        query.spans.start_to = self.time("span_end_time")?;
        Ok(query)
    }

    /// The span filter of span lists and summaries.
    pub(super) fn span_filter(&self) -> Result<SpanFilter, ApiError> {
        let mut filter = SpanFilter {
            start_from: self.time("start_time")?,
            start_to: self.time("end_time")?,
            search: self.get("search").map(str::to_owned),
            ..SpanFilter::default()
        };
        if let Some(environment) = self.get("environment") {
            filter.conditions.push(Condition {
                field: SpanField::Column(SpanColumn::Environment),
                operator: Operator::Equals,
                values: Self::equals(environment),
            });
        }
        let filters = self.filters_with_query(|name| parse_span_field(name).is_ok());
        parse_span_filters(&filters, &mut filter)?;
        Ok(filter)
    }

    /// The span list query.
    pub(super) fn span_query(&self) -> Result<SpanQuery, ApiError> {
        let mut query = SpanQuery {
            filter: self.span_filter()?,
            page: self.page()?,
            as_of: self.time("as_of")?,
            ..SpanQuery::default()
        };
        if let Some(sort) = self.get("sort_by") {
            query.sort = parse_sort(sort, SpanColumn::from_api, SpanColumn::api_names())?;
        }
        Ok(query)
    }
}

/// Builds the absolute `next`/`previous` links of a page: the request's own URL with `page`
/// changed and `as_of` pinned, so following them walks one consistent snapshot.
/// The query parameter of page links that carries the exact count of the walk's snapshot, as
/// its first page counted it: a later page of the walk reports that count instead of counting
/// rows that arrived after the snapshot (an unfiltered list counts the project's current total).
pub(crate) const SNAPSHOT_COUNT: &str = "snapshot_count";

pub(super) fn page_link(
    headers: &HeaderMap,
    uri: &Uri,
    query: &HashMap<String, String>,
    page: u64,
    as_of: Timestamp,
    snapshot_count: Option<u64>,
) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or("http");
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "page" | "as_of" | SNAPSHOT_COUNT))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    pairs.sort();
    pairs.push(("page".to_owned(), page.to_string()));
    pairs.push(("as_of".to_owned(), as_of.unix_nanos().to_string()));
    if let Some(count) = snapshot_count {
        pairs.push((SNAPSHOT_COUNT.to_owned(), count.to_string()));
    }
    let encoded: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
        .collect();
    format!("{scheme}://{host}{}?{}", uri.path(), encoded.join("&"))
}

fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The `{"count", "next", "previous", "results"}` envelope.
pub(super) fn list_envelope(
    count: u64,
    count_is_exact: bool,
    next: Option<String>,
    previous: Option<String>,
    results: Vec<Value>,
) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert("count".to_owned(), Value::from(count));
    object.insert("count_is_exact".to_owned(), Value::from(count_is_exact));
    object.insert("next".to_owned(), next.map_or(Value::Null, Value::from));
    object.insert(
        "previous".to_owned(),
        previous.map_or(Value::Null, Value::from),
    );
    object.insert("results".to_owned(), Value::Array(results));
    object
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_parameters_and_pin_the_snapshot() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "example.test:8080".parse().unwrap());
        let uri: Uri = "/api/traces/list/?page_size=2&model=a%20b".parse().unwrap();
        let query: HashMap<String, String> = [
            ("page_size".to_owned(), "2".to_owned()),
            ("search".to_owned(), "a b&c".to_owned()),
        ]
        .into();
        let link = page_link(
            &headers,
            &uri,
            &query,
            3,
            Timestamp::from_unix_nanos(42),
            None,
        );
        assert_eq!(
            link,
            "http://example.test:8080/api/traces/list/?page_size=2&search=a%20b%26c&page=3&as_of=42"
        );
        // The walk's exact count travels with it, replacing one the request carried.
        let mut query = query;
        query.insert(SNAPSHOT_COUNT.to_owned(), "9".to_owned());
        let link = page_link(
            &headers,
            &uri,
            &query,
            2,
            Timestamp::from_unix_nanos(42),
            Some(40),
        );
        assert_eq!(
            link,
            "http://example.test:8080/api/traces/list/?page_size=2&search=a%20b%26c&page=2&as_of=42&snapshot_count=40"
        );
    }

    #[test]
    fn body_values_complete_the_query_string() {
        let params = ListParams::new(
            [("page".to_owned(), "2".to_owned())].into(),
            br#"{"page": 5, "page_size": 10, "filters": {"model": {"operator": "", "value": ["x"]}}}"#,
        )
        .unwrap();
        let query = params.span_query().unwrap();
        assert_eq!(
            query.page,
            Page {
                number: 2,
                size: 10
            }
        );
        assert_eq!(query.filter.conditions.len(), 1);
        assert!(ListParams::new(HashMap::new(), b"[1]").is_err());
        assert!(ListParams::new(HashMap::new(), b"{").is_err());
    }

    #[test]
    fn plain_query_parameters_filter_by_equality_unless_filters_name_the_field() {
        let query: HashMap<String, String> = [
            ("customer_identifier", "acme"),
            ("metadata__step", "3"),
            ("model", "ignored"),
            ("page_size", "5"),
            ("not_a_field", "x"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let params = ListParams::new(
            query,
            br#"{"filters": {"model": {"operator": "", "value": ["gpt-4o"]}}}"#,
        )
        .unwrap();
        let filter = params.span_filter().unwrap();
        let mut got: Vec<String> = filter
            .conditions
            .iter()
            .map(|c| format!("{:?} {:?}", c.field, c.values))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                "Column(CustomerIdentifier) [Text(\"acme\")]".to_owned(),
                "Column(Model) [Text(\"gpt-4o\")]".to_owned(),
                "Metadata([\"step\"]) [Number(3.0)]".to_owned(),
            ]
        );
        // On trace lists a trace field filters the traces, span fields the spans they hold.
        let traces = params.trace_query().unwrap();
        assert_eq!(traces.conditions.len(), 1);
        assert_eq!(traces.spans.conditions.len(), 2);
    }
}
