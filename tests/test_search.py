"""Message search (docs/protocol.md, *Search*): `Search` answered by `Found`, and `Join` with
`Around` / `After` to open a conversation at a result.

alice owns the group "Class", bob is in it, carol is not. Every test runs on SQLite here and on
PostgreSQL under DATABASE_URL (the Makefile's PG_SUITES): the two indexes are different code.
"""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.db import connection

from chatsite.errors import ChatError
from groups import actions as group_actions
from messaging import actions, protocol
from messaging.models import Message
from messaging.search import case_variants, fts_query, message_search
from messaging.search_index import SearchIndexUnavailable, index_ensure, postgres_ensure
from messaging.selectors import message_list_readable
from tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)
db = database_sync_to_async


@pytest.fixture
def group(alice, bob):
    return group_actions.group_create(owner=alice, name="Class", member_usernames=["bob"])


def post(sender, content: str, *, to: str = "Class", chat: str = "Group") -> Message:
    return actions.message_send(sender=sender, chat=chat, to=to, content=content)[0]


def texts(user, query: str, **scope) -> list[str]:
    return [message.text for message in message_search(user=user, query=query, **scope).messages]


# ---- what matches ----------------------------------------------------------------------------


def test_every_word_must_appear_in_any_order(group, alice, bob):
    post(alice, "The date of the exam is Friday")
    post(alice, "exam only")
    post(alice, "date only")
    assert texts(bob, "exam date") == ["The date of the exam is Friday"]
    assert texts(bob, "date exam") == ["The date of the exam is Friday"]


def test_case_is_ignored_for_every_letter(group, alice, bob):
    post(alice, "EXAM in the ÉCOLE hall")
    assert texts(bob, "exam") == ["EXAM in the ÉCOLE hall"]
    assert texts(bob, "école") == ["EXAM in the ÉCOLE hall"]
    assert texts(bob, "Exam HALL") == ["EXAM in the ÉCOLE hall"]


def test_a_word_matches_inside_longer_words(group, alice, bob):
    post(alice, "two exams next week")
    post(alice, "the example sheet")
    post(alice, "an exact time")
    assert texts(bob, "exams") == ["two exams next week"]
    assert texts(bob, "exam") == ["the example sheet", "two exams next week"]
    assert texts(bob, "xam") == ["the example sheet", "two exams next week"]


def test_accents_are_matched_as_typed(group, alice, bob):
    post(alice, "a Café crème")
    post(alice, "a cafe latte")
    assert texts(bob, "café") == ["a Café crème"]
    assert texts(bob, "cafe") == ["a cafe latte"]


def test_words_under_three_characters_still_match(group, alice, bob):
    post(alice, "OK see you")
    post(alice, "fine")
    post(alice, "Ça va")
    assert texts(bob, "ok") == ["OK see you"]
    assert texts(bob, "ok see") == ["OK see you"]
    assert texts(bob, "ça") == ["Ça va"]
    assert texts(bob, "a") == ["Ça va"]


def test_case_variants_cover_both_cases_of_each_character():
    assert case_variants("ok") == ["OK", "Ok", "oK", "ok"]
    assert case_variants("é1") == ["É1", "é1"]


def test_images_are_not_found_by_their_url(group, alice, bob):
    from tests.test_images import data_url, picture

    actions.message_send(sender=alice, chat="Group", to="Class", content=data_url(picture("PNG")), is_image=True)
    assert texts(bob, "images") == []
    assert texts(bob, "png") == []


# ---- who finds what --------------------------------------------------------------------------


def test_non_member_finds_nothing_of_a_group(group, alice, bob, carol):
    post(alice, "exam on Friday")
    assert texts(bob, "exam") == ["exam on Friday"]
    assert texts(carol, "exam") == []
    assert texts(carol, "ex") == []


def test_member_who_left_finds_nothing_of_it_any_more(group, alice, bob):
    post(alice, "exam on Friday")
    assert texts(bob, "exam") == ["exam on Friday"]
    group_actions.group_leave(user=bob, group="Class")
    assert texts(bob, "exam") == []
    assert texts(bob, "on") == []


def test_private_conversations_are_found_by_their_two_people_only(alice, bob, carol):
    post(alice, "secret exam notes", chat="Private", to="bob")
    assert texts(alice, "exam") == ["secret exam notes"]
    assert texts(bob, "exam") == ["secret exam notes"]
    assert texts(carol, "exam") == []
    assert texts(carol, "se") == []


def test_results_are_exactly_the_readable_messages_holding_every_word(group, alice, bob, carol):
    """The hand-written access check of messaging.search against message_list_readable."""
    group_actions.group_create(owner=carol, name="Club", member_usernames=["bob"])
    samples = ["exam ok", "Exam date", "no EXAMS", "ok", "date"]
    for index, text in enumerate(samples * 3):
        sender, chat, to = [
            (alice, "Group", "Class"),
            (carol, "Group", "Club"),
            (alice, "Private", "bob"),
            (carol, "Private", "alice"),
            (bob, "Private", "carol"),
        ][index % 5]
        post(sender, text, chat=chat, to=to)
    for user in (alice, bob, carol):
        for query in ("exam", "ok", "exam date", "ok exam", "o"):
            words = query.casefold().split()
            expected = [
                m.pk
                for m in message_list_readable(user=user).order_by("-id")
                if all(word in m.text.casefold() for word in words)
            ]
            found = [m.pk for m in message_search(user=user, query=query).messages]
            assert found == expected, (user.username, query)


def test_a_search_can_keep_to_one_conversation(group, alice, bob, carol):
    post(alice, "exam in class")
    post(alice, "exam in private", chat="Private", to="bob")
    assert texts(bob, "exam", chat="Group", to="Class") == ["exam in class"]
    assert texts(bob, "exam", chat="Private", to="alice") == ["exam in private"]
    assert texts(bob, "ex", chat="Private", to="alice") == ["exam in private"]
    with pytest.raises(ChatError) as refused:
        message_search(user=carol, query="exam", chat="Group", to="Class")
    assert refused.value.code == "forbidden"
    assert texts(carol, "exam", chat="Private", to="alice") == []


# ---- removed and edited ----------------------------------------------------------------------


def test_a_removed_message_is_found_no_more(group, alice, bob, iago):
    first = post(alice, "exam one")
    second = post(alice, "exam two")
    actions.message_remove(actor=alice, message_id=first.pk)
    assert texts(bob, "exam") == ["exam two"]
    actions.messages_remove(actor=iago, message_ids=[second.pk])
    assert texts(bob, "exam") == []
    assert texts(bob, "tw") == []


def test_an_edit_changes_what_is_found_at_once(group, alice, bob):
    message = post(alice, "exam on Friday")
    actions.message_edit(user=alice, message_id=message.pk, content="test on Monday")
    assert texts(bob, "friday") == []
    assert texts(bob, "monday") == ["test on Monday"]
    assert texts(bob, "exam") == []


def test_a_deleted_group_leaves_nothing_to_find(group, alice, bob):
    post(alice, "exam on Friday")
    group_actions.group_delete(user=alice, group="Class")
    assert texts(alice, "exam") == []
    if connection.vendor == "sqlite":  # nor anything in the index
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM messaging_message_fts WHERE messaging_message_fts MATCH '\"exam\"'")
            assert cursor.fetchone()[0] == 0


@pytest.mark.skipif("connection.vendor != 'sqlite'")
def test_a_missing_trigger_is_put_back_and_the_index_rebuilt(group, alice, bob):
    """What a later migration rebuilding the table does to the triggers (messaging.apps)."""
    message = post(alice, "exam on Friday")
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER msg_fts_update")
    Message.objects.filter(pk=message.pk).update(text="test on Monday")
    assert texts(bob, "monday") == []  # the index missed it
    index_ensure(connection)
    assert texts(bob, "monday") == ["test on Monday"]
    assert texts(bob, "friday") == []


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_a_missing_pg_trgm_that_cannot_be_created_says_what_to_do(transactional_db):
    from django.db import DatabaseError

    class Cursor:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def execute(self, sql, params=None):
            if sql.startswith("CREATE EXTENSION"):
                raise DatabaseError("permission denied to create extension")

        def fetchone(self):
            return None  # the extension is not there

    class Connection:
        alias = connection.alias
        settings_dict = {"NAME": "chat"}

        def cursor(self):
            return Cursor()

    with pytest.raises(SearchIndexUnavailable, match='CREATE EXTENSION pg_trgm;" in database "chat"'):
        postgres_ensure(Connection())


# ---- pages -----------------------------------------------------------------------------------


def test_pages_go_back_with_before(group, alice, bob):
    ids = [post(alice, f"exam {n}").pk for n in range(120)]
    post(alice, "something else")
    seen = []
    before = None
    while True:
        page = message_search(user=bob, query="exam", before=before)
        assert len(page.messages) <= 50
        seen += [m.pk for m in page.messages]
        if page.before is None:
            break
        assert page.before == seen[-1]
        before = page.before
    assert seen == ids[::-1]
    assert len(message_search(user=bob, query="exam").messages) == 50


@pytest.mark.parametrize(
    "query, filler",
    [("exam", "exam elsewhere"), ("ex", "nothing here")],
    ids=["indexed: matches bob may not read", "short: bob's rows without a match"],
)
def test_a_page_reads_a_bounded_number_of_rows_and_says_where_to_go_on(
    settings, group, alice, bob, carol, query, filler
):
    """A page stops after CHAT_SEARCH_SCAN candidate rows (rows the index matched, or bob's
    rows for a short word); following `before` still finds every result, once."""
    settings.CHAT_SEARCH_SCAN = 8
    group_actions.group_create(owner=carol, name="Club", member_usernames=[])
    mine = [post(alice, "exam old").pk]
    for _ in range(30):
        if query == "ex":
            post(alice, filler)
        else:
            post(carol, filler, to="Club")
    mine.append(post(alice, "exam new").pk)
    seen, before, pages = [], None, 0
    while pages < 20:
        page = message_search(user=bob, query=query, before=before)
        pages += 1
        seen += [m.pk for m in page.messages]
        if page.before is None:
            break
        before = page.before
    assert seen == mine[::-1]
    assert pages > 2  # it did stop early


# ---- hostile queries -------------------------------------------------------------------------

HOSTILE = [
    '"',
    '""',
    '"exam',
    "exam*",
    "*",
    "NEAR(exam date)",
    "NEAR(",
    "exam OR date",
    "OR",
    "AND NOT",
    "-exam",
    "^exam",
    "exam:",
    "text:exam",
    "{text}:exam",
    "(exam",
    "exam)",
    "'",
    "%",
    "_",
    "\\",
    "%_\\",
    "e%m",
    "+",
    "🙂",
    "a\u0301",
    "\u200b",
]


@pytest.mark.parametrize("query", HOSTILE)
def test_fts_syntax_in_a_query_is_plain_text(group, alice, bob, query):
    post(alice, "exam date")
    post(alice, f"it says {query} here")
    found = texts(bob, query)
    assert found == [f"it says {query} here"]


def test_quoting_keeps_every_word_a_string():
    assert fts_query(['say "hi"', "NEAR("]) == '"say ""hi""" "NEAR("'


@pytest.mark.parametrize(
    "query, detail",
    [
        ("", "word"),
        ("   ", "word"),
        ("x" * 201, "200"),
        ("exam\x00", "control"),
        ("exam\ndate", "control"),
        ("exam\x1b[31m", "control"),
        (" ".join(f"w{n}" for n in range(21)), "20"),
        (None, "string"),
        (12, "string"),
    ],
)
def test_bad_queries_are_refused(query, detail):
    frame = {"Type": "Search"}
    if query is not None:
        frame["Query"] = query
    with pytest.raises(ChatError) as refused:
        protocol.parse(protocol.encode(frame), username="bob")
    assert refused.value.code == "bad_request"
    assert detail in refused.value.detail
    assert refused.value.ref == "Search"


def test_a_query_of_200_characters_is_searched(group, alice, bob):
    query = "y" * 200
    post(alice, query)
    assert texts(bob, query) == [query]


def test_search_parses_its_scope_and_before():
    command = protocol.parse(
        '{"Type": "Search", "Query": " exam  Exam date ", "Chat": "Group", "To": "Class", "Before": 9}',
        username="bob",
    )
    assert command == protocol.Search(
        query=" exam  Exam date ", words=("exam", "date"), chat="Group", to="Class", before=9
    )
    with pytest.raises(ChatError):
        protocol.parse('{"Type": "Search", "Query": "exam", "To": "Class"}', username="bob")
    with pytest.raises(ChatError):
        protocol.parse('{"Type": "Search", "Query": "exam", "Before": -1}', username="bob")


def test_join_takes_one_cursor_at_most():
    join = protocol.parse('{"Type": "Join", "Chat": "Group", "To": "Class", "Around": 5}', username="bob")
    assert (join.before, join.around, join.after) == (None, 5, None)
    with pytest.raises(ChatError) as refused:
        protocol.parse('{"Type": "Join", "Chat": "Group", "To": "Class", "Around": 5, "After": 3}', username="b")
    assert "at most one" in refused.value.detail


# ---- over the socket -------------------------------------------------------------------------


async def test_found_carries_full_message_frames_newest_first(connect, group, alice, bob, carol):
    first = await db(post)(alice, "exam on **Friday**")
    reply = await db(actions.message_send)(sender=bob, chat="Group", to="Class", content="exam?", reply_to=first.pk)
    await db(actions.reaction_set)(user=alice, message_id=first.pk, emoji="👍", on=True)
    await db(actions.message_edit)(user=alice, message_id=first.pk, content="exam on **Monday**")
    b, c = await connect(bob), await connect(carol)
    await b.drain()
    await b.send({"Type": "Search", "Query": "EXAM"})
    found = await b.next_of("Found")
    assert (found["Query"], found["HasMore"]) == ("EXAM", False)
    assert "Before" not in found
    [newest, oldest] = found["Messages"]
    assert newest["Id"] == reply[0].pk and newest["ReplyTo"]["Id"] == first.pk
    assert oldest["Id"] == first.pk
    assert oldest["Html"].strip() == "<p>exam on <strong>Monday</strong></p>"
    assert oldest["Reactions"] == [{"Emoji": "👍", "Users": ["alice"]}]
    assert "Edited" in oldest and oldest["Type"] == "Message" and oldest["Chat"] == "Group"
    await c.send({"Type": "Search", "Query": "exam"})
    assert (await c.next_of("Found"))["Messages"] == []


async def test_found_echoes_the_scope_and_refuses_a_group_one_is_not_in(connect, group, alice, bob, carol):
    await db(post)(alice, "exam")
    b, c = await connect(bob), await connect(carol)
    await b.send({"Type": "Search", "Query": "exam", "Chat": "Group", "To": "Class"})
    found = await b.next_of("Found")
    assert (found["Chat"], found["To"], len(found["Messages"])) == ("Group", "Class", 1)
    await c.send({"Type": "Search", "Query": "exam", "Chat": "Group", "To": "Class"})
    error = await c.next_of("Error")
    assert (error["Code"], error["Ref"]) == ("forbidden", "Search")


async def test_hostile_frames_get_bad_request_and_the_socket_stays(connect, group, alice, bob):
    b = await connect(bob)
    for query in ["", "x" * 5000, "exam\x00"]:
        await b.send({"Type": "Search", "Query": query})
        error = await b.next_of("Error")
        assert (error["Code"], error["Ref"]) == ("bad_request", "Search")
    await b.send({"Type": "Search", "Query": '" NEAR( * OR - ^'})
    assert (await b.next_of("Found"))["Messages"] == []


async def test_found_pages_say_where_the_next_starts(connect, group, alice, bob):
    for n in range(55):
        await db(post)(alice, f"exam {n}")
    b = await connect(bob)
    await b.send({"Type": "Search", "Query": "exam"})
    found = await b.next_of("Found")
    assert (len(found["Messages"]), found["HasMore"]) == (50, True)
    assert found["Before"] == found["Messages"][-1]["Id"]
    await b.send({"Type": "Search", "Query": "exam", "Before": found["Before"]})
    rest = await b.next_of("Found")
    assert ([m["Content"] for m in rest["Messages"]], rest["HasMore"]) == (
        [f"exam {n}" for n in range(4, -1, -1)],
        False,
    )


async def test_join_around_opens_the_conversation_at_a_message(connect, group, alice, bob):
    ids = [(await db(post)(alice, f"message {n}")).pk for n in range(100)]
    b = await connect(bob)
    await b.send({"Type": "Join", "Chat": "Group", "To": "Class", "Around": ids[60]})
    history = await b.next_of("History")
    assert [m["Id"] for m in history["Messages"]] == ids[35:85]
    assert (history["HasMore"], history["HasNewer"]) == (True, True)
    await b.send({"Type": "Join", "Chat": "Group", "To": "Class", "Around": ids[95]})
    history = await b.next_of("History")
    assert [m["Id"] for m in history["Messages"]] == ids[70:]
    assert (history["HasMore"], history["HasNewer"]) == (True, False)
    await b.send({"Type": "Join", "Chat": "Group", "To": "Class", "After": ids[84]})
    history = await b.next_of("History")
    assert [m["Id"] for m in history["Messages"]] == ids[85:]
    assert (history["HasMore"], history["HasNewer"]) == (True, False)
    await b.send({"Type": "Join", "Chat": "Group", "To": "Class"})
    newest = await b.next_of("History")
    assert "HasNewer" not in newest and [m["Id"] for m in newest["Messages"]] == ids[50:]


async def test_join_around_does_not_join_a_group_nor_show_it_to_a_non_member(connect, group, alice, carol):
    message = await db(post)(alice, "exam")
    c = await connect(carol)
    await c.send({"Type": "Join", "Chat": "Group", "To": "Class", "Around": message.pk})
    error = await c.next_of("Error")
    assert (error["Code"], error["Ref"]) == ("forbidden", "Join")
    assert not await db(lambda: group.members.filter(pk=carol.pk).exists())()


def test_a_user_who_reads_nothing_finds_nothing_among_many(group, alice, bob):
    dave = make_user("dave")
    for n in range(60):
        post(alice, f"exam {n}")
    assert texts(dave, "exam") == []
    assert message_search(user=dave, query="exam").before is None
