"""Images: validated by decoding, stored re-encoded as BLOBs, served only to who may see them."""

from __future__ import annotations

import base64
import io

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from PIL import Image as Pil
from PIL.PngImagePlugin import PngInfo

from groups import actions as group_actions
from messaging.models import Image, Message
from tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)


def picture(fmt: str, size=(64, 48), **save) -> bytes:
    out = io.BytesIO()
    Pil.new("RGB", size, (220, 40, 90)).save(out, fmt, **save)
    return out.getvalue()


def data_url(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def send_image(to: str, raw: bytes, mime: str = "image/png", chat: str = "Private", **extra) -> dict:
    return {"Type": "Send", "To": to, "Chat": chat, "Content": data_url(raw, mime), "is_image": 1, **extra}


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.mark.parametrize(
    "fmt, mime", [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp")]
)
async def test_each_format_round_trips(connect, alice, bob, fmt, mime):
    a, b = await connect(alice), await connect(bob)
    await a.expect("Presence", Username="bob", Online=True)
    await a.send(send_image("bob", picture(fmt), mime, ClientId="img-1"))
    echo = await a.expect("Message", is_image=1, ClientId="img-1")
    received = await b.expect("Message", is_image=1)
    assert echo["Content"] == received["Content"] == f"/images/{echo['Id']}/"
    stored = await database_sync_to_async(Image.objects.get)(pk=echo["Id"])
    assert (stored.content_type, stored.width, stored.height) == (mime, 64, 48)
    assert Pil.open(io.BytesIO(bytes(stored.data))).format == fmt
    assert Pil.open(io.BytesIO(bytes(stored.thumbnail))).format == "WEBP"


def bomb() -> bytes:
    out = io.BytesIO()
    Pil.new("1", (20_000, 20_000)).save(out, "PNG")  # 400 MP, a few dozen KB compressed
    return out.getvalue()


def svg() -> bytes:
    return b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="10" height="10"/></svg>'


REFUSALS = {
    "truncated": (lambda: picture("PNG", (300, 300))[:400], "image/png", "bad_request", "truncated"),
    "text renamed .png": (lambda: b"just some text, not a picture\n" * 10, "image/png", "bad_request", "not a PNG"),
    "svg": (svg, "image/svg+xml", "bad_request", "markup"),
    "html": (lambda: b"<!doctype html><html><body>hi</body></html>", "image/png", "bad_request", "markup"),
    "polyglot png+html": (
        lambda: picture("PNG") + b"<html><script>alert(1)</script></html>",
        "image/png",
        "bad_request",
        "markup",
    ),
    "png with data after its end": (
        lambda: picture("PNG") + b"PK\x03\x04 zip payload",
        "image/png",
        "bad_request",
        "after the end",
    ),
    "decompression bomb": (bomb, "image/png", "too_large", "too many pixels"),
    "oversized": (lambda: picture("BMP", (1200, 1200)), "image/png", "too_large", "at most"),
    "not base64": (None, "image/png", "bad_request", "base64"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_bad_images_are_refused_and_nothing_is_stored(connect, alice, bob, settings, case):
    settings.CHAT_IMAGE_MAX_BYTES = 1_000_000
    make, mime, code, detail = REFUSALS[case]
    a = await connect(alice)
    frame = (
        send_image("bob", make(), mime) if make else {**send_image("bob", b""), "Content": "data:image/png;base64,***"}
    )
    await a.send({**frame, "ClientId": "bad-1"})
    error = await a.expect("Error", Code=code, Ref="Send", ClientId="bad-1")
    assert detail in error["Detail"]
    assert await database_sync_to_async(Message.objects.count)() == 0
    assert await database_sync_to_async(Image.objects.count)() == 0


async def test_a_non_member_cannot_send_an_image_to_a_group(connect, alice, carol):
    await database_sync_to_async(group_actions.group_create)(owner=alice, name="Team", member_usernames=[])
    c = await connect(carol)
    await c.send(send_image("Team", picture("PNG"), chat="Group"))
    await c.expect("Error", Code="forbidden")


def jpeg_with_gps() -> bytes:
    image = Pil.new("RGB", (80, 60), (10, 120, 200))
    exif = image.getexif()
    exif[0x010F] = "SpyCam"  # Make
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (48.0, 51.0, 29.0), "E", (2.0, 17.0, 40.0)
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


def test_exif_and_gps_are_gone_from_the_stored_image(alice, bob):
    from messaging.actions import message_send

    raw = jpeg_with_gps()
    assert Pil.open(io.BytesIO(raw)).getexif().get_ifd(0x8825)
    message, _ = message_send(
        sender=alice, chat="Private", to="bob", content=data_url(raw, "image/jpeg"), is_image=True
    )
    stored = bytes(Image.objects.get(pk=message.pk).data)
    assert b"Exif" not in stored and b"SpyCam" not in stored
    assert not Pil.open(io.BytesIO(stored)).getexif()


def test_png_text_chunks_are_dropped(alice, bob):
    from messaging.actions import message_send

    info = PngInfo()
    info.add_text("Comment", "home address")
    message, _ = message_send(
        sender=alice, chat="Private", to="bob", content=data_url(picture("PNG", pnginfo=info)), is_image=True
    )
    assert b"home address" not in bytes(Image.objects.get(pk=message.pk).data)


@pytest.fixture
def sent_image(alice, bob):
    from messaging.actions import message_send

    message, _ = message_send(sender=alice, chat="Private", to="bob", content=data_url(picture("PNG")), is_image=True)
    return message


def test_the_two_people_of_the_chat_get_the_image_with_safe_headers(client, sent_image, bob):
    client.force_login(bob)
    response = client.get(f"/images/{sent_image.pk}/")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cache-Control"].startswith("private")
    assert Pil.open(io.BytesIO(response.content)).size == (64, 48)
    again = client.get(f"/images/{sent_image.pk}/", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304 and not again.content
    thumb = client.get(f"/images/{sent_image.pk}/thumb/")
    assert thumb.status_code == 200 and thumb["Content-Type"] == "image/webp"


def test_outsiders_get_404_and_anonymous_401(client, sent_image, carol):
    assert client.get(f"/images/{sent_image.pk}/").status_code == 401
    client.force_login(carol)
    assert client.get(f"/images/{sent_image.pk}/").status_code == 404
    assert client.get(f"/images/{sent_image.pk}/thumb/").status_code == 404


def test_staff_without_the_moderation_permission_are_outsiders_too(client, sent_image):
    stan = make_user("stan", is_staff=True)
    stan.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    client.force_login(stan)
    assert client.get(f"/images/{sent_image.pk}/").status_code == 404
    assert client.get(f"/images/{sent_image.pk}/thumb/").status_code == 404


def test_moderators_may_look(client, sent_image):
    mod = make_user("mod", is_staff=True)
    mod.groups.add(Group.objects.get(name="Moderators"))
    client.force_login(mod)
    assert client.get(f"/images/{sent_image.pk}/").status_code == 200
    client.force_login(get_user_model().objects.create_superuser("iago", "iago@example.com", "iago-pass-123"))
    assert client.get(f"/images/{sent_image.pk}/thumb/").status_code == 200


def test_a_text_message_has_no_image(client, alice, bob):
    from messaging.actions import message_send

    message, _ = message_send(sender=alice, chat="Private", to="bob", content="hi")
    client.force_login(bob)
    assert client.get(f"/images/{message.pk}/").status_code == 404


def test_group_members_see_group_images_and_deleting_the_group_deletes_them(client, alice, bob, carol):
    from messaging.actions import message_send

    group = group_actions.group_create(owner=alice, name="Team", member_usernames=["bob"])
    message, _ = message_send(
        sender=alice, chat="Group", to="Team", content=data_url(picture("GIF"), "image/gif"), is_image=True
    )
    client.force_login(bob)
    assert client.get(f"/images/{message.pk}/").status_code == 200
    client.force_login(carol)
    assert client.get(f"/images/{message.pk}/").status_code == 404
    group_actions.group_delete(user=alice, group=group)
    assert not Image.objects.exists()


def test_history_never_loads_image_bytes(alice, bob, django_assert_num_queries):
    from messaging.actions import message_send
    from messaging.protocol import message_to_frame
    from messaging.selectors import history_page

    message_send(sender=alice, chat="Private", to="bob", content=data_url(picture("PNG")), is_image=True)
    with django_assert_num_queries(3) as captured:  # the peer, the page, its reactions
        page = history_page(user=alice, chat="Private", to="bob").messages
    assert message_to_frame(page[0])["Content"].startswith("/images/")
    assert not any("messaging_image" in query["sql"] for query in captured.captured_queries)
