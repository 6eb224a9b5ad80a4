#!/usr/bin/env python3
"""Writes the hostile-input corpus: one JSON file per bad request in cases/, each with the
status the server must answer and what its answer must name. The test `it::corpus` replays
every file against a real server. Re-run after changing a case here:

    python3 crates/tracehouse/tests/corpus/generate.py

Case file fields:
  about     what the case tries
  method    HTTP method; path: request path (and query)
  headers   request headers; the API key is added unless `auth` says otherwise; a value
            {"fill": prefix, "unit": str, "count": n} is the prefix and n units
  auth      "bearer" (default), "none", "wrong", "query" (key only in the query string)
  body      {"text": str} | {"base64": str} | {"repeat": {head, unit, sep, count, tail}}
            | {"nest": {open, close, depth, head, tail}} | {"zeros": n} | {"truncated_gzip": str}
            (the gzip of str, cut in half); with "gzip": true the
            body is gzip-compressed before sending
  expect    status; contains: substrings the answer body must hold (the field, the index, the
            reason); rejected: [{index, field}] for a mixed batch; stored: span ids that must
            be readable afterwards
"""

import base64
import json
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "cases")
INGEST = "/api/v1/traces/ingest"
OTLP = "/v1/traces"
JSON = {"content-type": "application/json"}
cases = []


def case(name, about, body, expect, method="POST", path=INGEST, headers=None, auth="bearer", gzip=False):
    entry = {
        "about": about,
        "method": method,
        "path": path,
        "headers": JSON if headers is None else headers,
        "auth": auth,
        "body": body,
        "expect": expect,
    }
    if gzip:
        entry["gzip"] = True
    cases.append((name, entry))


def text(value):
    return {"text": value}


def span(span_id, **fields):
    item = {
        "trace_unique_id": "corpus-trace",
        "span_unique_id": span_id,
        "span_name": "corpus.task",
        "start_time": "2025-09-08T07:46:14Z",
        "timestamp": "2025-09-08T07:46:15Z",
    }
    item.update(fields)
    return item


VALID = json.dumps([span("ok-1", model="gpt-4o", prompt_tokens=10), span("ok-2", span_parent_id="ok-1")])

# 1. Invalid JSON, cut or corrupted at many positions.
for position in list(range(1, len(VALID), max(1, len(VALID) // 40)))[:40]:
    case(f"json-truncated-at-{position:03}", f"the valid body cut after {position} bytes",
         text(VALID[:position]), {"status": 400, "contains": ["JSON"]})
for position in range(5, len(VALID), max(1, len(VALID) // 12)):
    corrupted = VALID[:position] + "}" + VALID[position + 1:]
    if corrupted == VALID:
        continue
    try:
        json.loads(corrupted)
        continue
    except ValueError:
        pass
    case(f"json-corrupted-at-{position:03}", f"a '}}' written over byte {position}", text(corrupted),
         {"status": 400, "contains": ["JSON"]})
for literal in ["NaN", "Infinity", "-Infinity", "undefined", "0x10", "01", "+1", ".5", "1.", "'single'"]:
    case(f"json-literal-{literal.strip(chr(39)).lower().replace('.', 'dot').replace('+', 'plus').replace('-', 'minus')}",
         f"{literal} where JSON allows no such value",
         text(f'[{{"trace_unique_id": "t", "span_unique_id": "s", "cost": {literal}}}]'),
         {"status": 400, "contains": ["JSON"]})
case("json-trailing-comma", "a trailing comma in the array", text(VALID[:-1] + ",]"), {"status": 400, "contains": ["JSON"]})
case("json-trailing-garbage", "bytes after the array", text(VALID + " []"), {"status": 400, "contains": ["JSON"]})
case("json-comment", "a JavaScript comment", text("// spans\n" + VALID), {"status": 400, "contains": ["JSON"]})

# 2. Wrong types for every typed field: the bad item is rejected by index and field, the valid
#    one beside it is stored.
WRONG = {
    "String": [123, True, {"a": 1}],
    "Time": [True, {"at": 1}, "not a time", "2025-13-45T99:99:99Z"],
    "Number": ["fast", True, [1]],
    "Integer": ["many", 1.5, -3],
    "Object": ["text", 7, [1, 2]],
    "Bool": ["yes", 1],
    "Array": ["text", {"role": "user"}],
}
KINDS = {
    "span_parent_id": "String", "span_name": "String", "span_workflow_name": "String",
    "span_path": "String", "start_time": "Time", "timestamp": "Time", "end_time": "Time",
    "latency": "Number", "model": "String", "provider_id": "String", "prompt_tokens": "Integer",
    "completion_tokens": "Integer", "total_tokens": "Integer", "cost": "Number",
    "metadata": "Object", "disable_log": "Bool", "respan_params": "Object",
    "customer_params": "Object", "usage": "Object", "temperature": "Number", "top_p": "Number",
    "max_tokens": "Integer", "stream": "Bool", "prompt_messages": "Array",
    "completion_message": "Object", "log_type": "String", "status": "String",
    "status_code": "Number", "error_message": "String", "error_bit": "Integer",
    "customer_identifier": "String", "thread_identifier": "String", "environment": "String",
    "tools": "Array", "time_to_first_token": "Number",
}
for field, kind in KINDS.items():
    for variant, wrong in enumerate(WRONG[kind][:2]):
        bad = span("bad", **{field: wrong})
        body = [span("good"), bad]
        case(f"type-{field}-{variant}", f"{field} given as {json.dumps(wrong)}", text(json.dumps(body)),
             {"status": 207, "contains": [field], "rejected": [{"index": 1, "field": field}], "stored": ["good"]})
for field in ["trace_unique_id", "span_unique_id"]:
    for variant, wrong in enumerate([None, 42, "", "   ", "x" * 1_000_000]):
        bad = span("bad")
        if wrong is None:
            del bad[field]
        else:
            bad[field] = wrong
        name = ["missing", "number", "empty", "blank", "1mb"][variant]
        body = text(json.dumps([span("good"), bad]))
        if name == "1mb":
            # Built by the runner, so the corpus file stays small.
            del bad[field]
            head = json.dumps([span("good"), bad])[:-2] + f', "{field}": "'
            body = {"repeat": {"head": head, "unit": "x", "sep": "", "count": 1_000_000, "tail": '"}]'}}
        case(f"id-{field}-{name}", f"{field} {name}", body,
             {"status": 207, "contains": [field], "rejected": [{"index": 1, "field": field}], "stored": ["good"]})
case("id-control-chars", "an id with a newline and a NUL", text(json.dumps([span("good"), span("bad\n\u0000id")])),
     {"status": 207, "contains": ["span_unique_id"], "rejected": [{"index": 1, "field": "span_unique_id"}], "stored": ["good"]})
case("item-not-object", "array items that are not objects",
     text(json.dumps([span("good"), 7, "span", None, [1]])),
     {"status": 207, "contains": ["index"], "rejected": [{"index": 1, "field": ""}, {"index": 2, "field": ""}, {"index": 3, "field": ""}, {"index": 4, "field": ""}], "stored": ["good"]})
case("all-items-bad", "every item invalid", text(json.dumps([{"x": 1}, {"y": 2}])),
     {"status": 400, "contains": ["trace_unique_id"], "rejected": [{"index": 0, "field": "trace_unique_id"}, {"index": 1, "field": "trace_unique_id"}]})

# 3. Numbers out of range.
for field, value, name in [
    ("prompt_tokens", "1e400", "float-overflow"), ("prompt_tokens", "18446744073709551616", "u64-overflow"),
    ("prompt_tokens", "-1", "negative"), ("cost", "-0.5", "negative-cost"), ("latency", "-2", "negative-latency"),
    ("cost", "1e999", "cost-overflow"), ("completion_tokens", "99999999999999999999999", "huge-integer"),
    ("start_time", "99999999999999999999", "epoch-overflow"), ("start_time", "-99999999999", "epoch-negative"),
    ("timestamp", "1e300", "epoch-float-huge"),
]:
    bad = json.dumps(span("bad"))[:-1] + f', "{field}": {value}}}'
    if field == "latency":
        bad = json.dumps({k: v for k, v in span("bad").items() if k != "timestamp"})[:-1] + f', "{field}": {value}}}'
    body = f"[{json.dumps(span('good'))}, {bad}]"
    status = 400 if value in ("1e400", "1e999") else 207
    expect = {"status": status, "contains": ["JSON" if status == 400 else field]}
    if status == 207:
        expect.update({"rejected": [{"index": 1, "field": field}], "stored": ["good"]})
    case(f"number-{name}", f"{field}: {value}", text(body), expect)

# 4. Encoding: invalid UTF-8, BOM, NUL, duplicate keys.
valid_bytes = VALID.encode()
case("utf8-invalid-in-string", "a lone 0xff byte inside a string",
     {"base64": base64.b64encode(valid_bytes.replace(b"corpus.task", b"corpus\xff.task", 1)).decode()},
     {"status": 400, "contains": ["JSON", "unicode"]})
case("utf8-overlong", "an overlong encoding of '/'",
     {"base64": base64.b64encode(valid_bytes.replace(b"corpus.task", b"corpus\xc0\xaftask", 1)).decode()},
     {"status": 400, "contains": ["JSON", "unicode"]})
case("utf8-surrogate-escape", "a lone surrogate \\ud800 escape",
     text(VALID.replace("corpus.task", "corpus\\ud800task", 1)), {"status": 400, "contains": ["JSON"]})
case("utf8-bom", "a UTF-8 byte order mark before the array is skipped, as RFC 8259 allows",
     {"base64": base64.b64encode(b"\xef\xbb\xbf" + valid_bytes).decode()}, {"status": 200, "stored": ["ok-1", "ok-2"]})
case("utf16-body", "the body in UTF-16",
     {"base64": base64.b64encode(VALID.encode("utf-16")).decode()}, {"status": 400, "contains": ["JSON"]})
case("nul-raw", "a raw NUL byte between tokens",
     {"base64": base64.b64encode(valid_bytes[:1] + b"\x00" + valid_bytes[1:]).decode()}, {"status": 400, "contains": ["JSON"]})
case("nul-in-string-raw", "a raw NUL byte inside a string",
     {"base64": base64.b64encode(valid_bytes.replace(b"corpus.task", b"corpus\x00task", 1)).decode()},
     {"status": 400, "contains": ["JSON"]})
case("duplicate-keys", "the same key twice in one object (the last wins, as in most parsers)",
     text('[{"trace_unique_id": "t", "span_unique_id": "dup", "span_unique_id": "dup-final", "start_time": "2025-01-01T00:00:00Z"}]'),
     {"status": 200, "stored": ["dup-final"]})

# 5. Shape and size.
case("nesting-10k-arrays", "10,000 nested arrays", {"nest": {"open": "[", "close": "]", "depth": 10000, "head": "", "tail": ""}},
     {"status": 400, "contains": ["JSON"]})
case("nesting-10k-objects-in-metadata", "metadata nested 10,000 objects deep",
     {"nest": {"open": '{"a":', "close": "}", "depth": 10000,
               "head": '[{"trace_unique_id": "t", "span_unique_id": "deep", "metadata": ', "tail": "}]"}},
     {"status": 400, "contains": ["JSON"]})
case("items-100k-plus-one", "100,001 items, one more than a request may carry",
     {"repeat": {"head": "[", "unit": "{}", "sep": ",", "count": 100001, "tail": "]"}},
     {"status": 400, "contains": ["100000"]})
case("body-over-limit", "a body larger than the server's limit (the test server allows 4 MiB)",
     {"repeat": {"head": '[{"trace_unique_id": "t", "span_unique_id": "s", "input": "', "unit": "x", "sep": "", "count": 5 * 1024 * 1024, "tail": '"}]'}},
     {"status": 413, "contains": ["limit"]})
case("gzip-bomb", "64 MiB of zeros in a gzip body of about 64 KiB (inflation limit 8 MiB)",
     {"zeros": 64 * 1024 * 1024}, {"status": 413, "contains": ["limit"]},
     headers={"content-type": "application/json", "content-encoding": "gzip"}, gzip=True)
case("gzip-header-lies", "Content-Encoding: gzip on a plain body", text(VALID),
     {"status": 400, "contains": ["gzip"]}, headers={"content-type": "application/json", "content-encoding": "gzip"})
case("gzip-truncated", "a gzip body cut in half", {"truncated_gzip": VALID},
     {"status": 400, "contains": ["gzip"]}, headers={"content-type": "application/json", "content-encoding": "gzip"})
case("encoding-unknown", "Content-Encoding: br, which is not accepted", text(VALID),
     {"status": 415, "contains": ["br"]}, headers={"content-type": "application/json", "content-encoding": "br"})
case("encoding-zstd", "Content-Encoding: zstd, which is not accepted", text(VALID),
     {"status": 415, "contains": ["zstd"]}, headers={"content-type": "application/json", "content-encoding": "zstd"})
for name, body in [("empty", ""), ("whitespace", "  \n\t "), ("null", "null"), ("number", "42"),
                   ("string", '"spans"'), ("true", "true"), ("object-without-data", '{"spans": []}'),
                   ("data-not-array", '{"data": {"trace_unique_id": "t"}}'), ("data-null", '{"data": null}')]:
    case(f"body-{name}", f"a body that is {name}", text(body), {"status": 400, "contains": ["array"] if name not in ("empty", "whitespace") else ["empty"]})
case("body-empty-array", "an empty array: nothing to store is not an error", text("[]"), {"status": 200})

# 6. Content types.
for name, content_type in [("text-plain", "text/plain"), ("form", "application/x-www-form-urlencoded"),
                           ("xml", "application/xml"), ("multipart", "multipart/form-data; boundary=x"),
                           ("garbage", "\u00e9\u00e9")]:
    header = content_type.encode("latin-1").decode("latin-1")
    case(f"content-type-{name}", f"Content-Type {content_type!r} on span-log ingest", text(VALID),
         {"status": 415, "contains": ["content type", "application/json"]}, headers={"content-type": header})
case("content-type-missing", "no Content-Type on span-log ingest: JSON is assumed, as scripts often omit it",
     text(VALID), {"status": 200, "stored": ["ok-1", "ok-2"]}, headers={})
for name, content_type in [("text-plain", "text/plain"), ("missing", None), ("xml", "application/xml")]:
    case(f"otlp-content-type-{name}", f"Content-Type {content_type!r} on OTLP", {"base64": ""},
         {"status": 415, "contains": ["content type", "application/x-protobuf"]}, path=OTLP, headers={} if content_type is None else {"content-type": content_type})

# 7. OTLP bodies.
PB = {"content-type": "application/x-protobuf"}
for name, raw in [("garbage", b"\xff\xfe\xfd\xfc\xfb\xfa"), ("truncated-varint", b"\x0a\xff\xff\xff"),
                  ("length-past-end", b"\x0a\x7f\x0a\x05"), ("wrong-wire-type", b"\x0b\x00"),
                  ("random-text", b"hello, protobuf"), ("json-as-protobuf", valid_bytes),
                  ("deep-any-value", b"\x0a" * 64)]:
    case(f"otlp-protobuf-{name}", f"protobuf body: {name}", {"base64": base64.b64encode(raw).decode()},
         {"status": 400, "contains": ["protobuf"]}, path=OTLP, headers=PB)
case("otlp-protobuf-gzip-lie", "protobuf with Content-Encoding: gzip that is not gzip",
     {"base64": base64.b64encode(b"\x0a\x00").decode()}, {"status": 400, "contains": ["gzip"]},
     path=OTLP, headers={"content-type": "application/x-protobuf", "content-encoding": "gzip"})
OTLP_JSON = {"content-type": "application/json"}


def otlp_span(**fields):
    base = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "otlp.task",
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000001000000000"}
    base.update(fields)
    return {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"scope": {}, "spans": [base]}]}]}


for name, body in [
    ("not-json", "{resourceSpans"),
    ("resource-spans-string", '{"resourceSpans": "x"}'),
    ("spans-not-array", '{"resourceSpans": [{"scopeSpans": [{"spans": 5}]}]}'),
    ("time-not-number", json.dumps(otlp_span(startTimeUnixNano="soon"))),
    ("time-negative", json.dumps(otlp_span(startTimeUnixNano=-5))),
    ("kind-unknown-name", json.dumps(otlp_span(kind="SPAN_KIND_TELEPATHIC"))),
    ("status-code-string", json.dumps(otlp_span(status={"code": "BROKEN"}))),
    ("attributes-not-array", json.dumps(otlp_span(attributes={"a": 1}))),
    ("attribute-value-wrong", json.dumps(otlp_span(attributes=[{"key": "a", "value": {"intValue": "x1"}}]))),
    ("nesting-deep", {"repeat": {"head": "", "unit": '{"resourceSpans": [', "sep": "", "count": 5000, "tail": ""}}),
]:
    body = body if isinstance(body, dict) else text(body)
    case(f"otlp-json-{name}", f"OTLP JSON: {name}", body, {"status": 400, "contains": []}, path=OTLP, headers=OTLP_JSON)

# A span with bad ids is one rejected span of an accepted request (OTLP partial success).
for name, fields, field in [("trace-id-not-hex", {"traceId": "zz" * 16}, "trace_unique_id"),
                            ("trace-id-short", {"traceId": "abcd"}, "trace_unique_id"),
                            ("span-id-long", {"spanId": "ab" * 20}, "span_unique_id")]:
    case(f"otlp-json-{name}", f"OTLP JSON span with {name}", text(json.dumps(otlp_span(**fields))),
         {"status": 200, "contains": ["rejectedSpans", "span 0", field]}, path=OTLP, headers=OTLP_JSON)

# 8. Authentication.
for name, auth, headers in [
    ("none", "none", JSON), ("wrong-key", "wrong", JSON), ("query-string-key", "query", JSON),
    ("basic-scheme", "none", {"content-type": "application/json", "authorization": "Basic dXNlcjpwYXNz"}),
    ("bearer-empty", "none", {"content-type": "application/json", "authorization": "Bearer "}),
    ("bearer-binary", "none", {"content-type": "application/json", "authorization": "Bearer \u00ff\u00fe"}),
    ("x-api-key-wrong", "none", {"content-type": "application/json", "x-api-key": "th_not_a_key"}),
    ("key-60kb", "none", {"content-type": "application/json", "authorization": {"fill": "Bearer ", "unit": "k", "count": 60_000}}),
]:
    word = "Authorization" if name == "bearer-binary" else "key"
    case(f"auth-{name}", f"authentication: {name}", text(VALID), {"status": 401, "contains": [word]}, headers=headers, auth=auth)
for path in ["/api/traces/list/", "/api/request-logs/list/", "/api/traces/corpus-trace/", "/api/request-logs/ok-1/",
             "/api/projects/current/", "/api/traces/export/"]:
    case(f"auth-read-{path.strip('/').replace('/', '-')}", f"GET {path} without a key", {"text": ""},
         {"status": 401, "contains": ["key"]}, method="GET", path=path, headers={}, auth="none")
case("header-huge", "a 200 KB header", text(VALID), {"status": 431, "contains": ["header"]},
     headers={"content-type": "application/json", "x-filler": {"fill": "", "unit": "f", "count": 200_000}})

# 9. Read API parameters.
for name, query in [
    ("page-zero", "page=0"), ("page-negative", "page=-1"), ("page-text", "page=first"),
    ("page-size-zero", "page_size=0"), ("page-size-huge", "page_size=100000"), ("page-size-text", "page_size=lots"),
    ("sort-unknown", "sort_by=-favourite"), ("start-time-garbage", "start_time=yesterday-ish"),
    ("end-time-garbage", "end_time=2025-99-99"), ("as-of-garbage", "as_of=then"),
]:
    for route in ["traces", "request-logs"]:
        case(f"read-{route}-{name}", f"{route} list with {query}", {"text": ""},
             {"status": 400, "contains": [query.split("=")[0]]}, method="GET", path=f"/api/{route}/list/?{query}", headers={})
for name, filters, word in [
    ("unknown-operator", {"model": {"operator": "resembles", "value": ["gpt"]}}, "resembles"),
    ("unknown-field", {"favourite_color": {"value": ["red"]}}, "favourite_color"),
    ("number-as-text", {"cost": {"operator": "gt", "value": ["cheap"]}}, "cost"),
    ("time-as-text", {"start_time": {"operator": "gte", "value": ["recently"]}}, "start_time"),
    ("value-not-list", {"model": {"operator": "", "value": {"a": 1}}}, "model"),
    ("filters-not-object", ["model"], "filters"),
    ("condition-unknown-key", {"model": {"operator": "", "values": ["gpt-4o"]}}, "values"),
    ("operator-not-text", {"model": {"operator": 5, "value": ["x"]}}, "operator"),
    ("metadata-empty-key", {"metadata__": {"value": ["x"]}}, "metadata"),
    ("isnull-not-bool", {"model": {"operator": "isnull", "value": ["perhaps"]}}, "model"),
]:
    for route in ["traces/list", "request-logs/list", "request-logs/summary"]:
        case(f"filter-{route.replace('/', '-')}-{name}", f"{route} with filter {name}", text(json.dumps({"filters": filters})),
             {"status": 400, "contains": [word]}, path=f"/api/{route}/")
case("filter-body-not-json", "a list body that is not JSON", text("{filters"), {"status": 400, "contains": ["JSON"]}, path="/api/traces/list/")
case("read-trace-id-too-long", "a 3 KB trace id in the path", {"text": ""}, {"status": 404, "contains": []},
     method="GET", path="/api/traces/" + "t" * 3_000 + "/", headers={})
case("read-span-percent-nul", "a percent-encoded NUL in a span id", {"text": ""}, {"status": 404, "contains": []},
     method="GET", path="/api/request-logs/a%00b/", headers={})
case("delete-absent", "deleting a trace that does not exist", {"text": ""}, {"status": 404, "contains": []},
     method="DELETE", path="/api/traces/never-existed/", headers={})
case("method-wrong", "PUT on the ingest route", text(VALID), {"status": 405, "contains": []}, method="PUT")
case("route-unknown", "a route that does not exist", text(VALID), {"status": 404, "contains": []}, path="/api/v9/nothing")
case("export-format-unknown", "export in a format that does not exist", {"text": ""}, {"status": 400, "contains": ["format"]},
     method="GET", path="/api/traces/export/?format=xlsx", headers={})

if os.path.isdir(OUT):
    shutil.rmtree(OUT)
os.makedirs(OUT)
names = set()
for number, (name, entry) in enumerate(cases):
    assert name not in names, name
    names.add(name)
    with open(os.path.join(OUT, f"{number:03}-{name}.json"), "w") as out:
        json.dump(entry, out, indent=1, ensure_ascii=True)
        out.write("\n")
print(f"{len(cases)} cases in {OUT}")
