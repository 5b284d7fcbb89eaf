"""Concurrent writers: the database's constraints and row locks decide, and the
loser gets a clear 4xx, never a 500 or a half-applied change."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection
from rest_framework.test import APIClient

from contacts.models import Contact, ContactEmail
from tests.conftest import make_key


def _race(n: int, request) -> list[int]:
    barrier = threading.Barrier(n)
    statuses: list[int] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        try:
            barrier.wait()
            status = request(i)
            with lock:
                statuses.append(status)
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return statuses


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_of_one_email_make_exactly_one_contact(workspace):
    _, raw = make_key(workspace)

    def create(i: int) -> int:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        email = "race@example.com" if i % 2 else "RACE@example.com"
        return client.post("/v1/contacts", {"email": email, "full_name": f"R{i}"}, format="json").status_code

    statuses = Counter(_race(6, create))
    assert statuses == {201: 1, 400: 5}
    assert Contact.objects.filter(workspace=workspace).count() == 1
    assert ContactEmail.objects.filter(contact__workspace=workspace).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_merges_over_the_same_duplicate_apply_once(workspace):
    _, raw = make_key(workspace)
    a, b, dup = (
        Contact.objects.create(workspace=workspace, full_name=name, email=f"{name}@example.com")
        for name in ("a", "b", "dup")
    )

    def merge(i: int) -> int:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        primary = (a, b)[i % 2]
        return client.post(
            "/v1/contacts/merge", {"primary_id": str(primary.pk), "duplicate_ids": [str(dup.pk)]}, format="json"
        ).status_code

    statuses = Counter(_race(2, merge))
    assert statuses == {200: 1, 404: 1}
    assert not Contact.objects.filter(pk=dup.pk).exists()
    owners = list(ContactEmail.objects.filter(email="dup@example.com").values_list("contact_id", flat=True))
    assert len(owners) == 1 and owners[0] in (a.pk, b.pk)
