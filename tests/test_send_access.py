"""One truth for send access: the hand-written query of `send_target` (the hot path) agrees with
the ORM rules (`sender_check`, `user_get`, `group_require_member`) in every state a sender,
a recipient or a group can be in. A rule added to one side only makes this fail."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from accounts.models import Mute
from accounts.selectors import sender_check
from chatsite.errors import ChatError
from groups.models import ChatGroup
from groups.selectors import group_require_member
from messaging.protocol import GROUP, PRIVATE
from messaging.selectors import _send_sql, send_target, user_get
from tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)

SENDERS = ["active", "muted", "mute-expired", "inactive"]
TARGETS = [
    (PRIVATE, "active-peer"),
    (PRIVATE, "inactive-peer"),
    (PRIVATE, "nobody"),
    (PRIVATE, "self"),
    (GROUP, "member-of"),
    (GROUP, "outside-of"),
    (GROUP, "no-such-group"),
]


@pytest.fixture
def world(alice):
    now = timezone.now()
    senders = {}
    for state in SENDERS:
        user = make_user(f"s-{state}", is_active=state != "inactive")
        if state == "muted":
            Mute.objects.create(user=user, until=now + timedelta(hours=1), reason="spam")
        if state == "mute-expired":
            Mute.objects.create(user=user, until=now - timedelta(microseconds=1))
        senders[state] = user
    make_user("active-peer")
    make_user("inactive-peer", is_active=False)
    member_of = ChatGroup.objects.create(name="member-of", owner=alice)
    member_of.members.add(alice, *senders.values())
    ChatGroup.objects.create(name="outside-of", owner=alice).members.add(alice)
    return senders, now


def sql_allows(sender, chat: str, to: str, now) -> bool:
    with connection.cursor() as cursor:
        muted_at = connection.ops.adapt_datetimefield_value(now)
        cursor.execute(_send_sql(connection.vendor, chat), [muted_at, None, to, sender.pk])
        row = cursor.fetchone()
    active, muted, removed, target_id, *_, allowed = row
    assert not removed
    return bool(active and not muted and target_id is not None and allowed)


def orm_verdict(sender, chat: str, to: str, now) -> str:
    sender = get_user_model().objects.get(pk=sender.pk)
    try:
        sender_check(user=sender, now=now)
        user_get(username=to) if chat == PRIVATE else group_require_member(user=sender, name=to)
    except ChatError as error:
        return error.code
    return "ok"


@pytest.mark.parametrize("chat,target", TARGETS, ids=[f"{c}-{t}" for c, t in TARGETS])
@pytest.mark.parametrize("state", SENDERS)
def test_the_fast_query_and_the_orm_agree(world, state, chat, target):
    senders, now = world
    sender = senders[state]
    to = sender.username if target == "self" else target
    expected = orm_verdict(sender, chat, to, now)
    assert sql_allows(sender, chat, to, now) == (expected == "ok"), expected
    try:
        send_target(sender=sender, chat=chat, to=to, now=now)
        outcome = "ok"
    except ChatError as error:
        outcome = error.code
    assert outcome == expected
