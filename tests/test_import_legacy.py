"""manage.py import_legacy: people of the original Flask app keep their accounts, groups and messages.

hamlet and othello have werkzeug `sha256$` hashes (othello's password is not ASCII), cassio a
`pbkdf2:sha256:` one; all are made by werkzeug 2.2 itself. Images are made by Pillow.
"""

import base64
import io
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import Argon2PasswordHasher, check_password
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.test import Client
from PIL import Image as Pil
from werkzeug.security import generate_password_hash

import accounts.legacy
import chatsite.settings
from accounts.hashers import (
    WRAP_ITERATIONS,
    PBKDF2WrappedWerkzeugPBKDF2SHA256PasswordHasher,
    PBKDF2WrappedWerkzeugSHA256PasswordHasher,
    parse_werkzeug_hash,
    wrap_werkzeug_hash,
)
from groups.models import ChatGroup
from messaging import events
from messaging.images import process_image
from messaging.models import Image, Message, ReadMarker
from tests.conftest import make_user
from tests.test_images import jpeg_with_gps

pytestmark = pytest.mark.django_db

PASSWORDS = {"hamlet": "to be or not to be", "othello": "Désdémona ♥ Venise", "cassio": "lieutenant-1601"}
METHODS = {"hamlet": "sha256", "othello": "sha256", "cassio": "pbkdf2:sha256:1000"}
WRAPPERS = (PBKDF2WrappedWerkzeugSHA256PasswordHasher, PBKDF2WrappedWerkzeugPBKDF2SHA256PasswordHasher)


@pytest.fixture(autouse=True)
def real_hashers(fast_hasher, settings, monkeypatch):
    """The hashers of settings.py, made cheap: these tests check formats and upgrades, not costs."""
    settings.PASSWORD_HASHERS = chatsite.settings.PASSWORD_HASHERS
    for hasher in WRAPPERS:
        monkeypatch.setattr(hasher, "iterations", 1000)
    monkeypatch.setattr(Argon2PasswordHasher, "memory_cost", 1024)
    monkeypatch.setattr(Argon2PasswordHasher, "parallelism", 1)


def make_legacy(path, *, users=PASSWORDS, sql: str = ""):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE user (id INTEGER PRIMARY KEY, username TEXT UNIQUE, password TEXT)")
    rows = [
        (name, generate_password_hash(password, method=METHODS.get(name, "sha256"))) for name, password in users.items()
    ]
    db.executemany("INSERT INTO user (username, password) VALUES (?, ?)", rows)
    db.executescript(sql)
    db.commit()
    db.close()
    return path


CHAT_SQL = """
CREATE TABLE "group" (id INTEGER PRIMARY KEY, name TEXT, owner TEXT, members TEXT);
INSERT INTO "group" (name, owner, members) VALUES ('Elsinore', 'hamlet', 'othello, ghost');
INSERT INTO "group" (name, owner, members) VALUES ('Venice', 'othello', '["cassio"]');
CREATE TABLE message (id INTEGER PRIMARY KEY, sender TEXT, recipient TEXT, chat TEXT, content TEXT,
                      is_image INTEGER, time TEXT);
INSERT INTO message VALUES (1, 'hamlet', 'othello', 'Private', 'Words, words, words.', 0, '2019-05-01 10:00:00');
INSERT INTO message VALUES (2, 'othello', 'Elsinore', 'Group', 'Keep up your bright swords', 0, '2019-05-01 10:01:00');
INSERT INTO message VALUES (3, 'cassio', 'Venice', 'Group', 'data:image/png;base64,iVBORw0KGgo=', 1, '2019-05-01 10:02:00');
INSERT INTO message VALUES (4, 'ghost', 'hamlet', 'Private', 'Remember me.', 0, '2019-05-01 10:03:00');
"""


@pytest.fixture
def legacy(tmp_path):
    return make_legacy(tmp_path / "chat.db", sql=CHAT_SQL)


def run_import(path, **options) -> str:
    out = StringIO()
    call_command("import_legacy", str(path), stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def log_in(username: str, password: str):
    return Client().post("/accounts/login/", {"username": username, "password": password})


def stored_password(username: str) -> str:
    return get_user_model().objects.get(username=username).password


@pytest.mark.parametrize("method", ["sha256", "pbkdf2:sha256:1000", "pbkdf2:sha256"])
def test_werkzeug_hashes_are_read_by_the_wrapped_hashers(method):
    made = generate_password_hash("Désdémona ♥ Venise", method=method)
    wrapped = wrap_werkzeug_hash(parse_werkzeug_hash(made))
    assert check_password("Désdémona ♥ Venise", wrapped)
    assert not check_password("Desdemona ♥ Venise", wrapped)


def test_imported_users_log_in_over_http_with_their_old_passwords(legacy):
    run_import(legacy)
    for username, password in PASSWORDS.items():
        response = log_in(username, password)
        assert response.status_code == 302 and response.url == "/", username


def test_a_correct_login_upgrades_the_row_to_argon2(legacy):
    run_import(legacy)
    assert stored_password("othello").startswith("pbkdf2_wrapped_werkzeug_sha256$")
    assert log_in("othello", PASSWORDS["othello"]).status_code == 302
    assert stored_password("othello").startswith("argon2$")
    assert log_in("othello", PASSWORDS["othello"]).status_code == 302


def test_a_wrong_password_changes_nothing(legacy):
    run_import(legacy)
    before = stored_password("cassio")
    response = log_in("cassio", "Lieutenant-1601")
    assert response.status_code == 200 and b"Please enter a correct username and password" in response.content
    assert stored_password("cassio") == before


def test_imported_rows_are_wrapped_in_full_cost_pbkdf2_keeping_the_werkzeug_salt(legacy, monkeypatch):
    for hasher in WRAPPERS:
        monkeypatch.setattr(hasher, "iterations", WRAP_ITERATIONS)
    db = sqlite3.connect(legacy)
    werkzeug = {
        name: parse_werkzeug_hash(password) for name, password in db.execute("SELECT username, password FROM user")
    }
    run_import(legacy, messages_table="", groups_table="")
    hamlet, cassio = stored_password("hamlet"), stored_password("cassio")
    assert hamlet.startswith(f"pbkdf2_wrapped_werkzeug_sha256${WRAP_ITERATIONS}${werkzeug['hamlet'].salt}$")
    # PBKDF2 over werkzeug's 1000 iterations tops the work up to the same total.
    assert cassio.startswith(
        f"pbkdf2_wrapped_werkzeug_pbkdf2_sha256${WRAP_ITERATIONS - 1000}$1000${werkzeug['cassio'].salt}$"
    )
    assert werkzeug["hamlet"].hexdigest not in hamlet and werkzeug["cassio"].hexdigest not in cassio


def test_a_second_run_adds_nothing_and_keeps_upgraded_passwords(legacy):
    run_import(legacy)
    log_in("hamlet", PASSWORDS["hamlet"])
    upgraded = stored_password("hamlet")
    counts = (get_user_model().objects.count(), ChatGroup.objects.count(), Message.objects.count())
    output = run_import(legacy)
    assert "Users: 0 created, 3 already imported" in output
    assert "Groups: 0 created, 2 already imported" in output
    assert "Messages: 0 created, 2 already imported" in output
    assert (get_user_model().objects.count(), ChatGroup.objects.count(), Message.objects.count()) == counts
    assert stored_password("hamlet") == upgraded


def test_a_clashing_username_is_reported_and_never_overwritten(legacy):
    othello = make_user("Othello")
    output = run_import(legacy)
    assert "Taken here, not overwritten: othello" in output
    assert get_user_model().objects.get(pk=othello.pk).password == othello.password
    assert not get_user_model().objects.filter(username="othello").exists()
    assert not Message.objects.filter(sender=othello).exists() and not ChatGroup.objects.filter(owner=othello)
    assert "Skipped, sender not imported: 2" in output  # the legacy othello's and the ghost's


def test_the_dry_run_reports_what_would_happen_and_writes_nothing(legacy):
    output = run_import(legacy, dry_run=True)
    assert output.startswith("Dry run: nothing was written.")
    assert "Users: 3 would be created" in output and "Messages: 2 would be created" in output
    assert not get_user_model().objects.exists() and not ChatGroup.objects.exists() and not Message.objects.exists()
    assert not Group.objects.filter(name=accounts.legacy.IMPORTED_MARK).exists()


@pytest.mark.parametrize(
    "damage, error",
    [
        (lambda data: b"username,password\nhamlet,sha256$x$y\n", "not a readable SQLite database"),
        (lambda data: data[: len(data) // 2], "malformed"),
        (lambda data: data[:8192] + b"\xa5" * 4096 + data[12288:], "damaged SQLite database"),
    ],
    ids=["text", "truncated", "garbage-page"],
)
def test_a_file_that_is_not_sound_sqlite_is_refused(tmp_path, damage, error):
    many = {f"user{i}": "password" for i in range(300)}
    path = make_legacy(tmp_path / "chat.db", users=many)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CommandError, match=error):
        run_import(path)
    assert not get_user_model().objects.exists()


@pytest.mark.parametrize(
    "options, error",
    [
        ({"users_table": "users"}, "no table 'users'"),
        ({"password_column": "pw_hash"}, "no column 'pw_hash'"),
        ({"messages_table": "chat_log"}, "no table 'chat_log'"),
    ],
)
def test_a_file_without_the_named_table_or_column_is_refused(legacy, options, error):
    with pytest.raises(CommandError, match=error):
        run_import(legacy, **options)
    assert not get_user_model().objects.exists()


def test_it_refuses_to_run_without_the_wrapping_hashers(legacy, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
    with pytest.raises(CommandError, match="PASSWORD_HASHERS lacks accounts.hashers.PBKDF2WrappedWerkzeugSHA256"):
        run_import(legacy)
    assert not get_user_model().objects.exists()


def test_missing_files_are_refused(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        run_import(tmp_path / "nope.db")


def test_table_and_column_names_are_options(tmp_path):
    path = tmp_path / "chat.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE accounts (login TEXT, pw_hash TEXT)")
    db.execute("INSERT INTO accounts VALUES ('hamlet', ?)", (generate_password_hash("to be", method="sha256"),))
    db.commit()
    run_import(path, users_table="accounts", username_column="login", password_column="pw_hash")
    assert log_in("hamlet", "to be").status_code == 302


def test_groups_come_with_their_members_from_a_list_or_a_join_table(tmp_path):
    path = make_legacy(
        tmp_path / "chat.db",
        sql="""
        CREATE TABLE groups (id INTEGER PRIMARY KEY, name TEXT, owner_id INTEGER);
        INSERT INTO groups VALUES (7, 'Elsinore', 1), (8, 'Venice', 2);
        CREATE TABLE group_members (group_id INTEGER, user_id INTEGER);
        INSERT INTO group_members VALUES (7, 2), (8, 3), (8, 99);
    """,
    )
    output = run_import(path)
    elsinore, venice = ChatGroup.objects.order_by("name")
    assert (elsinore.owner.username, venice.owner.username) == ("hamlet", "othello")
    assert sorted(elsinore.members.values_list("username", flat=True)) == ["hamlet", "othello"]
    assert sorted(venice.members.values_list("username", flat=True)) == ["cassio", "othello"]
    assert "1 membership(s) left out" in output


def test_messages_come_once_with_their_time_and_without_live_events(legacy, monkeypatch):
    monkeypatch.setattr(events, "publish", lambda *args, **kwargs: pytest.fail("an import is not live chat"))
    output = run_import(legacy)
    private, group = Message.objects.order_by("id")
    assert (private.sender.username, private.recipient.username, private.text) == (
        "hamlet",
        "othello",
        "Words, words, words.",
    )
    assert (group.sender.username, group.group.name, group.client_id) == ("othello", "Elsinore", "legacy:2")
    assert private.created == datetime(2019, 5, 1, 10, 0, tzinfo=UTC)
    assert Message._meta.get_field("created").auto_now_add  # back on for messages sent live
    assert "Skipped message 3: image refused: This is not a PNG, JPEG, GIF or WebP image." in output
    # Old history is read history: no unread badges for it.
    assert ReadMarker.objects.get(user__username="othello", peer__username="hamlet").last_read_id == private.pk
    assert ReadMarker.objects.get(user__username="hamlet", group=group.group).last_read_id == group.pk


def test_rows_that_cannot_be_imported_are_reported(tmp_path):
    path = make_legacy(
        tmp_path / "chat.db",
        users={"hamlet": "to be", "bad name!": "secret"},
        sql="""
        INSERT INTO user (username, password) VALUES ('yorick', 'alas'), ('HAMLET', 'sha256$s$' || hex(zeroblob(32))),
            ('osric', 'scrypt:32768:8:1$salt$' || lower(hex(zeroblob(32))));
    """,
    )
    output = run_import(path)
    assert "Users: 1 created" in output
    assert "Rejected bad name!: not a valid username here" in output
    assert "Rejected yorick: password: not a werkzeug hash" in output
    assert "Rejected HAMLET: appears twice in the file" in output
    assert "Rejected osric: password: unsupported werkzeug method 'scrypt:32768:8:1'" in output


def test_an_error_midway_leaves_nothing_half_imported(legacy, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(accounts.legacy, "_save", fail)
    with pytest.raises(RuntimeError):
        run_import(legacy)
    assert not get_user_model().objects.exists() and not ChatGroup.objects.exists()


def test_progress_goes_to_stderr_when_asked(legacy):
    quiet, shown = StringIO(), StringIO()
    call_command("import_legacy", str(legacy), "--dry-run", stdout=StringIO(), stderr=quiet)
    call_command("import_legacy", str(legacy), "--progress", stdout=StringIO(), stderr=shown)
    assert quiet.getvalue() == ""
    assert "] 3/3 passwords" in shown.getvalue() and "] 4/4 messages\n" in shown.getvalue()
    assert "] 1/1 images\n" in shown.getvalue()


def png() -> bytes:
    out = io.BytesIO()
    Pil.new("RGB", (64, 48), (220, 40, 90)).save(out, "PNG")
    return out.getvalue()


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="10" height="10"/></svg>'


@pytest.fixture
def legacy_images(tmp_path):
    """Message 15 is a PNG BLOB (a BLOB is an image whatever is_image says), 16 a JPEG with GPS
    as data-URL text, 17 an SVG BLOB, 18 plain text."""
    path = make_legacy(
        tmp_path / "chat.db",
        sql="CREATE TABLE message (id INTEGER PRIMARY KEY, sender, recipient, content, is_image, time);",
    )
    jpeg_url = "data:image/jpeg;base64," + base64.b64encode(jpeg_with_gps()).decode()
    rows = [
        (15, "hamlet", "othello", png(), 0),
        (16, "othello", "hamlet", jpeg_url, 1),
        (17, "hamlet", "othello", SVG, 1),
        (18, "othello", "hamlet", "Who's there?", 0),
    ]
    with closing(sqlite3.connect(path)) as db, db:
        db.executemany("INSERT INTO message VALUES (?, ?, ?, ?, ?, '2019-05-01 10:00:00')", rows)
    return path


def stored_image(client_id: str) -> Image:
    return Image.objects.get(message__client_id=client_id)


def test_images_come_as_image_messages_checked_like_new_uploads(legacy_images):
    run_import(legacy_images)
    assert list(Message.objects.values_list("client_id", "is_image", "text")) == [
        ("legacy:15", True, ""),
        ("legacy:16", True, ""),
        ("legacy:18", False, "Who's there?"),
    ]
    png_image, jpeg_image = stored_image("legacy:15"), stored_image("legacy:16")
    assert (png_image.content_type, png_image.width, png_image.height) == ("image/png", 64, 48)
    assert (jpeg_image.content_type, jpeg_image.width, jpeg_image.height) == ("image/jpeg", 80, 60)
    assert Pil.open(io.BytesIO(bytes(png_image.thumbnail))).format == "WEBP"


def test_exif_and_gps_are_gone_from_imported_images(legacy_images):
    assert Pil.open(io.BytesIO(jpeg_with_gps())).getexif().get_ifd(0x8825)
    run_import(legacy_images)
    stored = bytes(stored_image("legacy:16").data)
    assert b"Exif" not in stored and b"SpyCam" not in stored
    assert not Pil.open(io.BytesIO(stored)).getexif()


def test_a_refused_image_is_reported_with_its_reason_and_skipped_alone(legacy_images):
    output = run_import(legacy_images)
    assert "Messages: 3 created, 0 already imported, 1 skipped." in output
    assert "  Images: 2 created, 1 refused." in output
    assert "  Skipped message 17: image refused: This file holds markup or script besides the image" in output
    assert not Message.objects.filter(client_id="legacy:17").exists()
    assert Image.objects.count() == 2


def test_a_second_run_adds_no_image_and_checks_only_the_refused_one_again(legacy_images, monkeypatch):
    run_import(legacy_images)
    checked = []
    monkeypatch.setattr(accounts.legacy, "process_image", lambda raw: checked.append(raw) or process_image(raw))
    output = run_import(legacy_images)
    assert "Messages: 0 created, 3 already imported, 1 skipped." in output
    assert "Skipped message 17: image refused" in output
    assert (Message.objects.count(), Image.objects.count()) == (3, 2)
    assert checked == [SVG]


def test_an_image_comes_even_when_someone_here_used_its_client_id(legacy_images):
    carol = make_user("carol")
    Message.objects.create(sender=carol, recipient=carol, text="mine", client_id="legacy:15")
    run_import(legacy_images)
    assert stored_image("legacy:15").message.sender.username == "hamlet"


def test_the_dry_run_checks_images_and_stores_none(legacy_images):
    output = run_import(legacy_images, dry_run=True)
    assert "  Images: 2 would be created, 1 refused." in output
    assert "Skipped message 17: image refused" in output
    assert not Message.objects.exists() and not Image.objects.exists()
