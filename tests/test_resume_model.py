"""A model-based test of resuming (hypothesis stateful): random sends, edits, reactions, removals,
joins, leaves and abrupt disconnects by several users; after every resume, a client holds exactly what a fresh load
shows.

alice, bob and carol each hold one client: a socket and what it was told, kept by the rules of
the resume contract (`Connect` with `Seq`, issue 13): a `Message` counts only if its `Id` is new
or its `Seq` newer than the one held, a `Removed` drops its `Ids` and remembers their `Seq` (so a
late older `Message` cannot bring one back), the cursor is the `Seq` of the last `Synced` (of the
first `State` before any), and a group the client learns it is in (`State`, or its own `Joined`) is
loaded with a `Join` (its `History`): the replay only brings what came after the cursor. iago
moderates (removes messages) and owns the groups; joins and leaves are made through the actions, as
from another tab. A socket dropped without warning loses whatever its client had not read yet.

The invariant, after each reconnect (once its `Synced` came and new groups are loaded) and each
time a connected client reads everything on its way: the client's messages with a `Seq` above its
first `State`'s are, `Id`, `Seq` and text, the messages a fresh load gives the user now
(`messaging.selectors.message_list_readable`, above that same `Seq`). Removed messages are gone
from the database (their tombstones are not messages), so they must be gone from the client too.

Each example runs on its own event loop (its hub, writer and sockets), on an empty database.
It fails if the replay leaves out removals (tried: `change_list` without tombstones), or stops one
change short. `MODEL_EXAMPLES=200` runs longer; `MODEL_SHRINK=1` shrinks a failure.
"""

from __future__ import annotations

import asyncio
import os

import hypothesis
import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import connection, connections
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from accounts.models import AuditEntry
from chatsite.errors import ChatError
from chatsite.ratelimit import limits_reset
from groups import actions as group_actions
from groups.models import ChatGroup
from messaging import catchup, selectors
from messaging.actions import message_edit, message_send, messages_remove, reaction_set
from messaging.hub import stop_hubs
from messaging.models import Message, Tombstone
from tests.conftest import ORIGIN, Socket, session_cookie

CLIENTS = ("alice", "bob", "carol")
GROUPS = ("Red", "Blue")
START = {"Red": ("alice", "bob"), "Blue": ("carol",)}  # iago, their owner, is in both
# Small enough that a long absence hits it: `Reset`, and the client loads its conversations again.
REPLAY_MAX = 8
HISTORY_PAGE = 4  # so that loading a conversation takes pages
# No shrinking by default: it can take minutes; the failing steps are printed as they ran.
# MODEL_SHRINK=1 shrinks them to a shortest failing sequence.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if os.environ.get("MODEL_SHRINK") else [])

User = get_user_model()
KEEP = st.none() | st.integers(0, 12)  # how many frames a client had read when its socket dropped
ACTION = st.one_of(  # what happens while someone is away
    st.tuples(st.just("send"), st.sampled_from(CLIENTS), st.sampled_from(CLIENTS + GROUPS), st.booleans()),
    st.tuples(st.just("remove")),
    st.tuples(st.just("change")),
    st.tuples(st.just("move"), st.sampled_from(CLIENTS), st.sampled_from(GROUPS)),
)


class Client:
    """One user's client: what the server told it, applied by the resume contract's rules."""

    def __init__(self, user) -> None:
        self.user = user
        self.name = user.username
        self.sock: Socket | None = None
        # Id -> (Seq, text, reactions, group or None)
        self.messages: dict[int, tuple[int, str, tuple, str | None]] = {}
        self.removed: dict[int, int] = {}  # Id -> Seq of its removal
        self.first: int | None = None  # the Seq of the very first State
        self.cursor: int | None = None
        self.groups: set[str] = set()  # the groups it is in, as far as it knows
        self.loaded: set[str] = set()  # those whose History it holds
        self.peers: list[str] = []  # everyone in the last State
        self.reset = False  # told to reload everything (`Reset`)

    def view(self) -> dict[int, tuple[int, str, tuple]]:
        return {
            id_: (seq, text, reactions) for id_, (seq, text, reactions, _) in self.messages.items() if seq > self.first
        }

    def apply(self, frame: dict) -> None:
        kind = frame["Type"]
        assert kind != "Error", f"{self.name}: {frame}"
        if kind == "State":
            self.groups = {g["Name"] for g in frame["Groups"] if self.name in g["Members"]}
            self.peers = [u["Username"] for u in frame["Users"] if u["Username"] != self.name]
            if self.first is None:
                self.first = self.cursor = frame["Seq"]
            if frame.get("Reset"):
                self.messages.clear()
                self.loaded.clear()
                self.reset = True
            self._forget_groups_left()
        elif kind == "Message":
            self._message(frame)
        elif kind == "History":
            if frame["Chat"] == "Group":
                self.loaded.add(frame["To"])
            for message in frame["Messages"]:
                self._message(message)
        elif kind == "Removed":
            for id_ in frame["Ids"]:
                self.messages.pop(id_, None)
                self.removed[id_] = max(self.removed.get(id_, 0), frame["Seq"])
        elif kind == "Synced":
            self.cursor = frame["Seq"]
        elif kind == "Group" and frame["User"] == self.name:
            if frame["Event"] in ("Created", "Joined"):
                self.groups.add(frame["Name"])
            else:
                self.groups.discard(frame["Name"])
                self._forget_groups_left()

    def _message(self, frame: dict) -> None:
        id_, seq = frame["Id"], frame["Seq"]
        group = frame["To"] if frame["Chat"] == "Group" else None
        if group is not None and group not in self.groups:
            return  # not a conversation it has (a client shows no group it is not in)
        if self.removed.get(id_, 0) >= seq or self.messages.get(id_, (0,))[0] >= seq:
            return  # a repeat, or older than what it knows
        reactions = tuple((r["Emoji"], tuple(r["Users"])) for r in frame.get("Reactions", ()))
        self.messages[id_] = (seq, frame["Content"], reactions, group)

    def _forget_groups_left(self) -> None:
        self.loaded &= self.groups
        self.messages = {k: v for k, v in self.messages.items() if v[3] is None or v[3] in self.groups}


async def open_socket(user) -> Socket:
    from chatsite.asgi import application

    key = await database_sync_to_async(session_cookie)(user)
    cookie = f"{django_settings.SESSION_COOKIE_NAME}={key}".encode()
    headers = [(b"host", b"127.0.0.1:8000"), (b"origin", ORIGIN), (b"cookie", cookie)]
    comm = WebsocketCommunicator(application, "/ws/chat/", headers=headers)
    connected, code = await comm.connect(timeout=5)
    assert connected, code
    return Socket(comm, user, key)


def fresh_load(user, after: int) -> dict[int, tuple[int, str, tuple]]:
    """What a new page load shows the user (from `after`, its first State's Seq, on)."""
    messages = selectors.message_list_readable(user=user).filter(seq__gt=after).only("id", "seq", "text")
    return {
        m.pk: (m.seq, m.text, tuple((emoji, tuple(users)) for emoji, users in m.reaction_list))
        for m in selectors.with_reactions(list(messages))
    }


def world() -> dict[str, object]:
    iago = User.objects.create_superuser("iago", "iago@example.com", "iago-pass-123")
    users = {name: User.objects.create_user(name, password=f"{name}-pass-123") for name in CLIENTS}
    for name, members in START.items():
        group_actions.group_create(owner=iago, name=name, member_usernames=list(members))
    return {"iago": iago, **users}


def forget_world() -> None:
    """Every row an example made, so the next starts afresh (a flush takes much longer)."""
    Tombstone.objects.all().delete()
    ChatGroup.objects.all().delete()
    User.objects.all().delete()  # their messages, sessions, pointers and connections with them
    Session.objects.all().delete()
    AuditEntry.objects.all().delete()


class ResumeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        limits_reset()
        self.runner = asyncio.Runner()
        self.users = self.run(database_sync_to_async(world)())
        self.clients = {name: Client(self.users[name]) for name in CLIENTS}
        self.sent = 0
        for client in self.clients.values():
            self.run(self.connect(client))

    def run(self, coroutine):
        return self.runner.run(coroutine)

    def teardown(self) -> None:
        async def close() -> None:
            for client in self.clients.values():
                if client.sock is not None:
                    await client.sock.comm.disconnect(timeout=5)
            await stop_hubs()
            await database_sync_to_async(connections.close_all)()  # kept open while the example ran

        try:
            self.run(close())
        finally:
            self.runner.close()
            forget_world()

    # ---- the client's side ----------------------------------------------------------------

    async def connect(self, client: Client) -> None:
        """Open a socket and resume from the cursor (the first time: a plain `Connect`)."""
        client.sock = await open_socket(client.user)
        if client.cursor is None:
            await client.sock.send({"Type": "Connect"})
            await self.read_until(client, lambda f: f["Type"] == "State")
        else:
            await client.sock.send({"Type": "Connect", "Seq": client.cursor})
            state: list[dict] = []

            def synced(frame: dict) -> bool:
                if frame["Type"] == "State" and not state:
                    state.append(frame)
                return bool(state) and frame["Type"] == "Synced" and frame["Seq"] == state[0]["Seq"]

            await self.read_until(client, synced)
        await self.load(client)

    async def read_until(self, client: Client, last) -> dict:
        """Apply frames as they come, up to and including the first that `last` accepts (returned)."""
        while True:
            frame = await client.sock.recv(timeout=5)
            client.apply(frame)
            if last(frame):
                return frame

    async def load(self, client: Client) -> None:
        """What a client does on learning of a group it holds nothing of (or of a `Reset`): ask
        for its History, page after page back to its first `State`. A `Join` with `Before` never
        makes a member (nor changes anything)."""
        wanted = [("Group", name) for name in sorted(client.groups - client.loaded)]
        if client.reset:
            wanted += [("Private", peer) for peer in client.peers]
            client.reset = False
        for chat, to in wanted:
            before = 2**62
            while True:
                await client.sock.send({"Type": "Join", "Chat": chat, "To": to, "Before": before})

                def history(frame: dict, asked=(chat, to)) -> bool:
                    return frame["Type"] == "History" and (frame["Chat"], frame["To"]) == asked

                frame = await self.read_until(client, history)
                page = frame["Messages"]
                if not frame["HasMore"] or not page or page[0]["Seq"] <= client.first:
                    break
                before = page[0]["Id"]

    async def read_all(self, client: Client, keep: int | None = None) -> None:
        """Everything published for the socket so far; only the first `keep` frames are applied
        (the rest are lost with the socket), all of them when None."""
        frames = await client.sock.probe()
        for frame in frames if keep is None else frames[:keep]:
            client.apply(frame)

    async def check(self, client: Client) -> None:
        held = client.view()
        truth = await database_sync_to_async(fresh_load)(client.user, client.first)
        missing = sorted(set(truth) - set(held))
        extra = sorted(set(held) - set(truth))
        stale = sorted(i for i in set(held) & set(truth) if held[i] != truth[i])
        assert held == truth, f"{client.name}: missing {missing}, extra (removed or unreadable) {extra}, stale {stale}"

    # ---- what happens in the chat ------------------------------------------------------------

    async def send_one(self, sender: str, to: str, socket: bool) -> None:
        """A private or group message (none if not a member): through the sender's socket (the
        writer), when it has one and `socket`, or the action."""
        client = self.clients[sender]
        self.sent += 1
        text = f"{sender} #{self.sent}"
        chat = "Group" if to in GROUPS else "Private"

        def member() -> bool:
            return ChatGroup.objects.filter(name=to, members=client.user).exists()

        if chat == "Group" and not await database_sync_to_async(member)():
            return
        if socket and client.sock is not None:
            echo = f"c{self.sent}"
            await client.sock.send({"Type": "Send", "Chat": chat, "To": to, "Content": text, "ClientId": echo})
            await self.read_until(client, lambda f: f["Type"] == "Message" and f.get("ClientId") == echo)
        else:
            await database_sync_to_async(message_send)(sender=client.user, chat=chat, to=to, content=text)

    async def remove_some(self, data, held_by: list[str]) -> None:
        """The moderator removes one or two messages (any conversation), often ones that a
        client of `held_by` holds (what its resume must take back)."""
        ids = await database_sync_to_async(lambda: sorted(Message.objects.values_list("id", flat=True)))()
        held = sorted({i for name in held_by for i in self.clients[name].messages} & set(ids))
        pool = data.draw(st.sampled_from([ids, held] if held else [ids]), label="from")
        if pool:
            chosen = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=2, unique=True), label="remove")
            await database_sync_to_async(messages_remove)(actor=self.users["iago"], message_ids=chosen, reason="x")

    async def change_some(self, data, held_by: list[str]) -> None:
        """Its sender edits a message, or someone toggles a reaction to it (often one that a client
        of `held_by` holds): either gives it a new `Seq` (and text or reactions) that a resume must
        bring. One who cannot read it (left the group) is refused (`not_found`): nothing changes."""
        rows = await database_sync_to_async(lambda: list(Message.objects.values_list("id", "sender__username")))()
        held = [row for row in rows if any(row[0] in self.clients[name].messages for name in held_by)]
        pool = data.draw(st.sampled_from([rows, held] if held else [rows]), label="from")
        if not pool:
            return
        message_id, sender = data.draw(st.sampled_from(pool), label="change")
        user = self.users[sender]
        self.sent += 1
        try:
            if data.draw(st.booleans(), label="edit"):
                await database_sync_to_async(message_edit)(
                    user=user, message_id=message_id, content=f"edit #{self.sent}"
                )
            else:  # by anyone: one who cannot read it is refused
                user = self.users[data.draw(st.sampled_from(CLIENTS), label="reacts")]
                on = data.draw(st.booleans(), label="on")
                await database_sync_to_async(reaction_set)(user=user, message_id=message_id, emoji="👍", on=on)
        except ChatError as error:
            assert error.code == "not_found", error

    async def join_or_leave_one(self, name: str, group: str) -> None:
        """Join the group, or leave it if a member (from another tab: the actions)."""
        user = self.users[name]

        def go() -> None:
            chat_group = ChatGroup.objects.get(name=group)
            if chat_group.members.filter(pk=user.pk).exists():
                group_actions.group_leave(user=user, group=chat_group)
            else:
                group_actions.group_join(user=user, group=chat_group)

        await database_sync_to_async(go)()

    async def drop_one(self, client: Client, keep: int | None) -> None:
        await self.read_all(client, keep)
        await client.sock.comm.disconnect(code=1006, timeout=5)
        client.sock = None

    async def resume(self, client: Client) -> None:
        await self.connect(client)
        await self.check(client)

    def online(self) -> list[str]:
        return [name for name, client in self.clients.items() if client.sock is not None]

    def offline(self) -> list[str]:
        return [name for name, client in self.clients.items() if client.sock is None]

    # ---- rules ------------------------------------------------------------------------------

    @rule(sender=st.sampled_from(CLIENTS), to=st.sampled_from(CLIENTS + GROUPS), socket=st.booleans())
    def send(self, sender: str, to: str, socket: bool) -> None:
        self.run(self.send_one(sender, to, socket))

    @rule(data=st.data())
    def remove(self, data) -> None:
        self.run(self.remove_some(data, self.offline()))

    @rule(data=st.data())
    def change(self, data) -> None:
        self.run(self.change_some(data, self.offline()))

    @rule(name=st.sampled_from(CLIENTS), group=st.sampled_from(GROUPS))
    def join_or_leave(self, name: str, group: str) -> None:
        self.run(self.join_or_leave_one(name, group))

    @precondition(online)
    @rule(data=st.data(), keep=KEEP)
    def drop(self, data, keep: int | None) -> None:
        """A socket goes without a close frame; its client had read only `keep` frames of what
        came (None: all of them). It stays away until `reconnect`."""
        client = self.clients[data.draw(st.sampled_from(self.online()), label="drop")]
        self.run(self.drop_one(client, keep))

    @precondition(offline)
    @rule(data=st.data())
    def reconnect(self, data) -> None:
        """A dropped client comes back with its cursor; then it holds what a fresh load shows."""
        client = self.clients[data.draw(st.sampled_from(self.offline()), label="reconnect")]
        self.run(self.resume(client))

    @precondition(online)
    @rule(data=st.data(), keep=KEEP, meanwhile=st.lists(ACTION, min_size=1, max_size=5))
    def absence(self, data, keep: int | None, meanwhile: list[tuple]) -> None:
        """A client drops, the chat goes on (`meanwhile`), and it comes back: a whole absence."""
        name = data.draw(st.sampled_from(self.online()), label="away")
        client = self.clients[name]

        async def go() -> None:
            await self.drop_one(client, keep)
            for action, *args in meanwhile:
                if action == "send":
                    await self.send_one(*args)
                elif action == "remove":
                    await self.remove_some(data, [name])
                elif action == "change":
                    await self.change_some(data, [name])
                else:
                    await self.join_or_leave_one(*args)
            await self.resume(client)

        self.run(go())

    @precondition(online)
    @rule(data=st.data())
    def read(self, data) -> None:
        """A connected client reads all that was sent to it: it holds what a fresh load shows."""
        client = self.clients[data.draw(st.sampled_from(self.online()), label="read")]

        async def go() -> None:
            await self.read_all(client)
            await self.load(client)
            await self.check(client)

        self.run(go())


@pytest.mark.django_db(transaction=True)
def test_a_client_resuming_at_any_point_holds_what_a_fresh_load_shows(model_settings):
    run_state_machine_as_test(
        ResumeMachine,
        settings=hypothesis.settings(
            max_examples=int(os.environ.get("MODEL_EXAMPLES", 25)),
            stateful_step_count=25,
            deadline=None,
            phases=PHASES,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


@pytest.fixture
def model_settings(settings, monkeypatch):
    settings.CHAT_REPLAY_MAX = REPLAY_MAX
    settings.CHAT_HISTORY_PAGE = HISTORY_PAGE
    # The database thread keeps its connection for the example (closed in its teardown): a new
    # one per query would take most of the time on PostgreSQL.
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", None)
    settings.CHAT_RATE_BURST = settings.CHAT_USER_RATE_BURST = 100_000
    # The hub's sweep and its `Synced` within an example's time (they run every few seconds).
    monkeypatch.setattr(catchup, "SWEEP_EVERY", 0.02)
    monkeypatch.setattr(catchup, "SWEEP_LAG", 0.04)
    monkeypatch.setattr(catchup, "SYNCED_EVERY", 0.05)
