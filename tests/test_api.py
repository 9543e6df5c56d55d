"""/api/users/ and /api/groups/ as in the contract."""

import pytest

from groups.models import ChatGroup
from messaging.models import Connection

pytestmark = pytest.mark.django_db


def test_users_lists_everyone_with_presence(client, alice, bob):
    Connection.objects.create(user=bob, channel_name="x")
    client.force_login(alice)
    assert client.get("/api/users/").json() == [
        {"Username": "alice", "Online": False},
        {"Username": "bob", "Online": True},
    ]


def test_groups_lists_groups_with_members(client, alice, bob, django_assert_max_num_queries):
    for name in ("Café ☕", "Team"):
        group = ChatGroup.objects.create(name=name, owner=alice)
        group.members.add(alice, bob)
    client.force_login(bob)
    with django_assert_max_num_queries(6):
        response = client.get("/api/groups/")
    assert response.json() == [
        {"Name": "Café ☕", "Owner": "alice", "Members": ["alice", "bob"]},
        {"Name": "Team", "Owner": "alice", "Members": ["alice", "bob"]},
    ]


@pytest.mark.parametrize("path", ["/api/users/", "/api/groups/"])
def test_api_needs_login(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.json() == {"Error": "Authentication required."}
