#!/usr/bin/env python3
"""Logs LLM requests with the vendor's two logging clients, unchanged but for the base URL, and
reads each back with the client's own calls (whose response models validate the answers):

- keywordsai's `LogAPI`: `create`, `get(id)`, `list(customer_identifier=...)`;
- respan-api's `RespanClient`: `spans.create_span`, `spans.retrieve_span(unique_id)`.

    logging_clients.py BASE_URL API_KEY

BASE_URL is the server root (loopback only). Prints one JSON line per client with what it
read back, then, last, the trace id of the log respan-api created (32 lowercase hex digits).
Exits non-zero when a call fails or an answer does not validate.
"""

import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import loopback_guard  # noqa: E402

PROMPT = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "logging-clients prompt"},
]


def check(condition: bool, what: str) -> None:
    if not condition:
        sys.exit(f"logging_clients.py: {what}")


def keywordsai_round_trip(base: str, key: str) -> dict:
    from keywordsai.logs.api import LogAPI

    # As the client's docs say: the API's base URL, `/api` included (the client strips it).
    client = LogAPI(api_key=key, base_url=f"{base}/api")
    created = client.create(
        {
            "model": "gpt-4o-mini",
            "prompt_messages": PROMPT,
            "completion_message": {"role": "assistant", "content": "kwai answer"},
            "prompt_tokens": 9,
            "completion_tokens": 3,
            "cost": 0.00001,
            "latency": 0.42,
            "customer_identifier": "kwai-customer",
            "thread_identifier": "kwai-thread",
            "custom_identifier": "kwai-custom",
            "metadata": {"source": "keywordsai"},
        }
    )
    check(isinstance(created, dict) and created.get("id"), f"create answered {created!r}")
    log = client.get(created["id"])
    check(log.model == "gpt-4o-mini", f"get returned model {log.model!r}")
    check(log.customer_identifier == "kwai-customer", "get lost the customer")
    listing = client.list(page=1, page_size=10, customer_identifier="kwai-customer")
    check(listing.count == 1, f"list counted {listing.count}")
    check(len(listing.results) == 1, f"list returned {len(listing.results)} logs")
    return {
        "client": "keywordsai",
        "id": created["id"],
        "model": log.model,
        "prompt_tokens": log.prompt_tokens,
        "completion_tokens": log.completion_tokens,
        "listed": listing.count,
    }


def respan_round_trip(base: str, key: str) -> dict:
    from respan.client import RespanClient

    client = RespanClient(base_url=base, authorization=f"Bearer {key}", respan_api_key=key)
    created = client.spans.create_span(
        model="gpt-4o",
        prompt_messages=PROMPT,
        completion_message={"role": "assistant", "content": "respan answer"},
        prompt_tokens=20,
        completion_tokens=5,
        cost=0.0002,
        latency=1.5,
        customer_identifier="respan-customer",
        thread_identifier="respan-thread",
        custom_identifier="respan-custom",
        metadata={"source": "respan-api"},
    )
    check(created.id is not None, f"create_span answered no id: {created!r}")
    span = client.spans.retrieve_span(unique_id=created.id)
    check(span.id == created.id, f"retrieve_span returned {span.id!r}")
    check(span.model == "gpt-4o", f"retrieve_span returned model {span.model!r}")
    check(span.thread_identifier == "respan-thread", "retrieve_span lost the thread")
    return {
        "client": "respan-api",
        "id": span.id,
        "trace_unique_id": span.trace_unique_id,
        "model": span.model,
        "prompt_tokens": span.prompt_tokens,
        "cost": span.cost,
        "custom_identifier": span.custom_identifier,
    }


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    base, key = sys.argv[1].rstrip("/"), sys.argv[2]
    loopback_guard.require_loopback_url(base)
    loopback_guard.install()
    for name in ("KEYWORDSAI_BASE_URL", "KEYWORDS_AI_BASE_URL", "RESPAN_API_KEY"):
        os.environ.pop(name, None)
    print(json.dumps(keywordsai_round_trip(base, key)))
    respan = respan_round_trip(base, key)
    print(json.dumps(respan))
    print(respan["trace_unique_id"])


if __name__ == "__main__":
    main()
