#!/usr/bin/env python3
"""Drives the users API with the vendor's respan-api client, unchanged but for the base URL:
logs requests for two customers with `spans.create_span`, then walks `users.list_customers`
with its own pager, reads one user with `users.retrieve_user`, changes it with
`users.update_user`, logs a third customer whose profile comes in `customer_params` (with a
time to first token) and finds them by email with `list_customers`' filters, and expects
`NotFoundError` for a customer nobody logged (the client's response models validate every
answer).

    users_client.py BASE_URL API_KEY

BASE_URL is the server root (loopback only). Prints one JSON line of what it read back, then,
last, the trace id of the first log it created (32 lowercase hex digits). Exits non-zero when a
call fails or an answer does not validate.
"""

import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import loopback_guard  # noqa: E402


def check(condition: bool, what: str) -> None:
    if not condition:
        sys.exit(f"users_client.py: {what}")


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    base, key = sys.argv[1].rstrip("/"), sys.argv[2]
    loopback_guard.require_loopback_url(base)
    loopback_guard.install()
    os.environ.pop("RESPAN_API_KEY", None)

    from respan.client import RespanClient
    from respan.errors import NotFoundError
    from respan.types import SpanCreateRequestCustomerParams

    client = RespanClient(base_url=base, authorization=f"Bearer {key}", respan_api_key=key)
    logs = [
        ("sdk-ann", "sdk-thread-1", 0.002),
        ("sdk-ann", "sdk-thread-2", 0.001),
        ("sdk-bob", "sdk-thread-3", 0.0005),
    ]
    first = None
    for customer, thread, cost in logs:
        created = client.spans.create_span(
            model="gpt-4o-mini",
            prompt_messages=[{"role": "user", "content": f"hello from {customer}"}],
            completion_message={"role": "assistant", "content": "hi"},
            prompt_tokens=10,
            completion_tokens=2,
            cost=cost,
            customer_identifier=customer,
            thread_identifier=thread,
        )
        first = first or created.id

    # One user per page: the pager asks for pages until one comes back empty.
    pager = client.users.list_customers(page_size=1, sort_by="-total_cost")
    users = list(pager)
    names = [user.customer_identifier for user in users]
    check(names == ["sdk-ann", "sdk-bob"], f"list_customers walked {names!r}")
    ann = users[0]
    check(ann.number_of_requests == 2, f"ann made {ann.number_of_requests!r} requests")
    check(abs(ann.total_cost - 0.003) < 1e-9, f"ann cost {ann.total_cost!r}")
    check(ann.first_seen is not None, "ann has no first_seen")

    user = client.users.retrieve_user("sdk-ann")
    check(user.customer_identifier == "sdk-ann", f"retrieve_user answered {user!r}")
    check(user.name is None, f"ann already has a name: {user.name!r}")

    updated = client.users.update_user(
        "sdk-ann",
        name="Ann Example",
        email="ann@example.com",
        metadata={"plan": "pro"},
        period_budget=10.0,
        budget_duration="monthly",
    )
    check(updated.name == "Ann Example", f"update_user answered {updated!r}")
    check(updated.period_budget == 10.0, f"update_user budget {updated.period_budget!r}")
    again = client.users.retrieve_user("sdk-ann")
    check(again.email == "ann@example.com", f"retrieve_user after update: {again!r}")
    check(again.budget_duration == "monthly", f"budget duration {again.budget_duration!r}")
    check(again.updated_at is not None, "no updated_at after an update")

    # A profile sent with the span, and the usage fields the client's list model has.
    client.spans.create_span(
        model="gpt-4o-mini",
        prompt_messages=[{"role": "user", "content": "hello from sdk-cid"}],
        completion_message={"role": "assistant", "content": "hi"},
        prompt_tokens=10,
        completion_tokens=2,
        ttft=0.25,
        customer_params=SpanCreateRequestCustomerParams(
            customer_identifier="sdk-cid", name="Cid Example", email="cid@example.com"
        ),
    )
    found = list(
        client.users.list_customers(
            sort_by="customer_identifier",
            filters={"email": {"operator": "icontains", "value": ["EXAMPLE.COM"]}},
        )
    )
    emails = [(user.customer_identifier, user.email) for user in found]
    check(
        emails == [("sdk-ann", "ann@example.com"), ("sdk-cid", "cid@example.com")],
        f"list_customers by email found {emails!r}",
    )
    cid = found[1]
    check(cid.name == "Cid Example", f"cid's name {cid.name!r}")
    check(cid.active_days == 1, f"cid's active days {cid.active_days!r}")
    check(cid.average_ttft == 0.25, f"cid's average ttft {cid.average_ttft!r}")
    check(ann.average_ttft is None, f"ann sent no ttft: {ann.average_ttft!r}")

    try:
        client.users.retrieve_user("sdk-nobody")
    except NotFoundError:
        missing = "not found"
    else:
        sys.exit("users_client.py: retrieve_user of an unknown customer did not raise")

    print(
        json.dumps(
            {
                "listed": names,
                "ann_requests": ann.number_of_requests,
                "name": again.name,
                "email": again.email,
                "by_email": [customer for customer, _ in emails],
                "unknown": missing,
            }
        )
    )
    span = client.spans.retrieve_span(unique_id=first)
    print(span.trace_unique_id)


if __name__ == "__main__":
    main()
