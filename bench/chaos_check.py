"""The verdict of a chaos run (bench/chaos.py): what every client holds against the database.

`truth_load` reads the database straight (in the chaos process, through the ORM); `compare`
puts it beside each client's model and the run's records. See bench/chaos.py for the columns.
Works with and without `Seq` (models `messaging.SeqCounter`, `messaging.Tombstone`,
`groups.Membership` are used when they exist).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

SAMPLES = 10


@dataclass(frozen=True)
class Row:
    id: int
    sender: str
    to: str  # recipient's username, or the group's name
    chat: str
    client_id: str | None
    created: float
    seq: int


@dataclass
class Truth:
    live: dict[int, Row]
    tombstones: set[int]
    members: dict[str, dict[str, int]]  # group -> member -> Seq of the join (0 without Seq)
    seq: int  # the last Seq handed out (0 without Seq)
    last_id: dict[str, int] = field(default_factory=dict)  # user -> newest live message they may read


def _model(app: str, name: str) -> Any | None:
    from django.apps import apps

    try:
        return apps.get_model(app, name)
    except LookupError:
        return None


def _has_field(model: Any, name: str) -> bool:
    return any(f.name == name for f in model._meta.get_fields())


def truth_load() -> Truth:
    """Everything a fresh load would show, for everyone (call in a worker thread)."""
    from groups.models import ChatGroup
    from messaging.models import Message

    with_seq = _has_field(Message, "seq")
    fields = ["id", "sender__username", "recipient__username", "group__name", "client_id", "created"]
    live = {}
    for values in Message.objects.values_list(*fields, *(["seq"] if with_seq else [])):
        pk, sender, recipient, group, client_id, created, *seq = values
        chat, to = ("Group", group) if group is not None else ("Private", recipient)
        live[pk] = Row(pk, sender, to, chat, client_id, created.timestamp(), seq[0] if seq else 0)
    truth = Truth(live=live, tombstones=_tombstones(), members=_members(ChatGroup), seq=_counter())
    truth.last_id = _last_ids(truth)
    return truth


def _tombstones() -> set[int]:
    model = _model("messaging", "Tombstone")
    return set(model.objects.values_list("message_id", flat=True)) if model else set()


def _counter() -> int:
    model = _model("messaging", "SeqCounter")
    return (model.objects.values_list("value", flat=True).first() or 0) if model else 0


def _members(chat_group: Any) -> dict[str, dict[str, int]]:
    members: dict[str, dict[str, int]] = {g: {} for g in chat_group.objects.values_list("name", flat=True)}
    membership = _model("groups", "Membership")
    if membership is not None and _has_field(membership, "seq"):
        rows = membership.objects.values_list("chatgroup__name", "user__username", "seq")
    else:
        rows = (
            (g, u, 0) for g, u in chat_group.members.through.objects.values_list("chatgroup__name", "user__username")
        )
    for group, username, seq in rows:
        members[group][username] = seq
    return members


def _last_ids(truth: Truth) -> dict[str, int]:
    last: Counter[str] = Counter()
    for row in truth.live.values():
        readers = [row.sender, row.to] if row.chat == "Private" else list(truth.members.get(row.to, {}))
        for reader in readers:
            last[reader] = max(last[reader], row.id)
    return dict(last)


# ---- the comparison ------------------------------------------------------------------------


def should_hold(client: Any, row: Row, truth: Truth, joined_at: dict) -> bool:
    """A stored message this socket must hold: one its user may read now, changed after the
    socket's first `State` (after its Reset, if it had one) and after its user last joined."""
    if client.baseline is None:
        return False
    if (row.seq if client.seq_mode else row.id) <= client.baseline:
        return False
    user = client.username
    if row.chat == "Private":
        return user in (row.sender, row.to)
    members = truth.members.get(row.to, {})
    if user not in members:
        return False
    if client.seq_mode:
        return row.seq > members[user]
    return row.created > joined_at.get((user, row.to), 0.0)


def may_see_now(username: str, held: Any, truth: Truth) -> bool:
    """Whether a fresh load shows this conversation to the user: theirs, or a group they are in.
    (A group they left is not shown, and no `Removed` of its messages reaches them any more.)"""
    if held.chat == "Private":
        return username in (held.sender, held.to)
    return username in truth.members.get(held.to, {})


def may_read(username: str, seen: tuple[str, str, str], ever_members: dict[str, set[str]]) -> bool:
    sender, to, chat = seen
    if chat == "Private":
        return username in (sender, to)
    return username in ever_members.get(to, set())


def compare(run: Any, truth: Truth) -> dict[str, Any]:
    """Every column of the table, and a few examples of each failure."""
    figures: dict[str, Any] = {"sent": len(run.outgoing)}
    figures.update(_storage(run, truth))
    lost: dict[int, list[str]] = {}
    samples: dict[str, list] = {"lost": [], "leaked": [], "stale": [], "held twice": []}
    counts: Counter[str] = Counter()
    for client in run.clients:
        _client_findings(client, run, truth, lost, samples, counts)
    figures.update(
        {
            "lost": len(lost),
            "lost (socket, message) pairs": sum(len(v) for v in lost.values()),
            "duplicated": figures.pop("stored twice") + counts["held twice"],
            "leaked": counts["leaked"],
            "stale": counts["stale"],
            "clients never connected": sum(1 for c in run.clients if c.baseline is None),
        }
    )
    figures["samples"] = {k: v[:SAMPLES] for k, v in samples.items()}
    figures["samples"]["lost"] = [_describe(truth.live[i], lost[i]) for i in sorted(lost)[:SAMPLES]]
    return figures


def _storage(run: Any, truth: Truth) -> dict[str, Any]:
    """Sends against rows: stored (live or removed by us), stored twice, never stored."""
    rows_by_cid: Counter[str] = Counter(r.client_id for r in truth.live.values() if r.client_id in run.outgoing)
    stored = set(rows_by_cid) | run.removed_client_ids
    twice = sum(n - 1 for n in rows_by_cid.values()) + len(set(rows_by_cid) & run.removed_client_ids)
    never = [o for o in run.outgoing.values() if o.client_id not in stored]
    return {
        "stored": len(stored),
        "stored twice": twice,
        "never stored": len(never),
        "never stored: refused": dict(Counter(o.refused for o in never if o.refused)),
        "never stored: still pending": sum(1 for o in never if not o.refused),
    }


def _client_findings(client: Any, run: Any, truth: Truth, lost: dict, samples: dict, counts: Counter) -> None:
    for row in truth.live.values():
        if row.id not in client.held and should_hold(client, row, truth, run.joined_at):
            lost.setdefault(row.id, []).append(client.name + (" (saw it)" if row.id in client.seen else ""))
    for message_id, held in client.held.items():
        if message_id not in truth.live and may_see_now(client.username, held, truth):
            counts["stale"] += 1
            samples["stale"].append({"socket": client.name, "id": message_id, "chat": held.chat, "to": held.to})
    for message_id, seen in client.seen.items():
        if not may_read(client.username, seen, run.ever_members):
            counts["leaked"] += 1
            samples["leaked"].append({"socket": client.name, "id": message_id, "message": seen})
    by_cid = Counter(h.client_id for h in client.held.values() if h.client_id)
    for client_id, n in by_cid.items():
        if n > 1:
            counts["held twice"] += n - 1
            samples["held twice"].append({"socket": client.name, "ClientId": client_id, "copies": n})


def _describe(row: Row, sockets: list[str]) -> dict[str, Any]:
    return {"id": row.id, "seq": row.seq, "chat": row.chat, "from": row.sender, "to": row.to, "sockets": sockets}
