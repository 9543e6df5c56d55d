"""messaging.render: what a message's text becomes in `Html`, and that no typed text makes active content."""

from __future__ import annotations

import time
from html.parser import HTMLParser

import nh3
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from messaging.render import _MARKDOWN, _SANITIZER, LINK_REL, SANITIZER_OPTIONS, TAGS, _plain, render_text

SCHEMES = ("http:", "https:", "mailto:")


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def tags_of(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    parser.close()
    return parser.tags


def assert_inert(html: str) -> None:
    """Only allow-listed tags; no event handler, no style; links only to http(s)/mailto, each rel'd and _blank."""
    for tag, attrs in tags_of(html):
        assert tag in TAGS, (tag, html)
        for name in attrs:
            assert not name.startswith("on"), (name, html)
            assert name != "style", html
        if tag == "a":
            assert attrs.get("rel") == LINK_REL, html
            assert attrs.get("target") == "_blank", html
            href = attrs.get("href")
            assert href is None or href.lower().startswith(SCHEMES), (href, html)
        else:
            assert "href" not in attrs and "src" not in attrs, html


def links(html: str) -> list[dict[str, str | None]]:
    return [attrs for tag, attrs in tags_of(html) if tag == "a"]


# ---- it works ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, html",
    [
        ("**bold**", "<p><strong>bold</strong></p>\n"),
        ("*italic* and _too_", "<p><em>italic</em> and <em>too</em></p>\n"),
        ("~~gone~~", "<p><s>gone</s></p>\n"),
        ("run `ls -l` now", "<p>run <code>ls -l</code> now</p>\n"),
        ("```python\nif a < b:\n    go()\n```", "<pre><code>if a &lt; b:\n    go()\n</code></pre>\n"),
        ("> quoted\nstill", "<blockquote>\n<p>quoted<br>\nstill</p>\n</blockquote>\n"),
        ("- one\n- two", "<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n"),
        ("3. three\n4. four", '<ol start="3">\n<li>three</li>\n<li>four</li>\n</ol>\n'),
        ("first line\nsecond line", "<p>first line<br>\nsecond line</p>\n"),
        ("one\n\ntwo", "<p>one</p>\n<p>two</p>\n"),
    ],
)
def test_it_renders_the_chat_subset_of_markdown(text, html):
    assert render_text(text) == html


def test_a_bare_url_becomes_a_link_that_opens_apart():
    (link,) = links(render_text("see https://example.com/a?b=1 now"))
    assert link == {"href": "https://example.com/a?b=1", "target": "_blank", "rel": "noopener nofollow ugc"}


def test_www_and_email_and_mailto_become_links():
    html = render_text("www.example.com, bob@example.com and <mailto:carol@example.com>")
    assert [a["href"] for a in links(html)] == [
        "http://www.example.com",
        "mailto:bob@example.com",
        "mailto:carol@example.com",
    ]
    assert_inert(html)


def test_a_file_name_is_not_a_link_but_a_domain_is():
    html = render_text("open main.py and README.md, then see python.org or google.de")
    assert [a["href"] for a in links(html)] == ["http://python.org", "http://google.de"]
    assert "main.py" in html and "README.md" in html


def test_a_markdown_link_keeps_its_label():
    assert render_text("[the docs](https://example.com/docs)") == (
        '<p><a href="https://example.com/docs" target="_blank" rel="noopener nofollow ugc">the docs</a></p>\n'
    )


def test_what_does_not_belong_in_a_bubble_stays_text():
    assert render_text("# not a heading") == "<p># not a heading</p>\n"
    assert render_text("title\n===") == "<p>title<br>\n===</p>\n"
    assert render_text("---") == "<p>---</p>\n"
    assert render_text("[1]: https://example.com") == (
        '<p>[1]: <a href="https://example.com" target="_blank" rel="noopener nofollow ugc">https://example.com</a></p>\n'
    )


def test_an_image_is_never_embedded_only_linked():
    html = render_text("![x](https://evil.example/pixel.png)")
    assert "<img" not in html
    assert html == (
        '<p>!<a href="https://evil.example/pixel.png" target="_blank" rel="noopener nofollow ugc">x</a></p>\n'
    )


def test_plain_text_is_escaped():
    assert render_text("a < b && c > d") == "<p>a &lt; b &amp;&amp; c &gt; d</p>\n"
    assert render_text("<b>not bold</b>") == "<p>&lt;b&gt;not bold&lt;/b&gt;</p>\n"


def test_a_language_class_is_dropped_from_code():
    assert render_text("```js\nx\n```") == "<pre><code>x\n</code></pre>\n"


# ---- hostile text --------------------------------------------------------------------------------

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    "<iframe src=https://evil.example></iframe>",
    '<a href="javascript:alert(1)">x</a>',
    "<style>body{display:none}</style>",
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](java&#x09;script:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](vbscript:msgbox(1))",
    "[x](file:///etc/passwd)",
    "[x](//evil.example)",
    "[x](/relative)",
    "<javascript:alert(1)>",
    "javascript:alert(1)",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&#106;avascript:alert(1)",
    "![x](https://evil.example/pixel.png)",
    '[x](https://example.com "title" onclick="alert(1)")',
    'https://example.com/"onmouseover=alert(1)',
    "ftp://example.com/file",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_makes_no_active_content(text):
    html = render_text(text)
    assert_inert(html)
    assert "<script" not in html and "<img" not in html and "<svg" not in html and "<iframe" not in html


@pytest.mark.parametrize("text", [t for t in HOSTILE if t.startswith("[x](") and "https:" not in t])
def test_a_refused_link_shows_as_typed(text):
    html = render_text(text)
    assert links(html) == [], html
    assert html.startswith("<p>[x](")


PATHOLOGICAL = {
    "1,000 nested quotes": ">" * 1000 + " deep",
    "137 lines of deepening quotes": "\n".join(">" * i + " x" for i in range(1, 138)),
    "95 nested lists": "\n".join("  " * i + "- x" for i in range(95)),
    "10,000 backticks": "`" * 10_000,
    "5,000 backtick pairs": "` " * 5_000,
    "10,000 stars": "*" * 10_000,
    "3,333 star words": "*a " * 3_333,
    "10,000 brackets": "[" * 10_000,
    "2,500 link openers": "[a](" * 2_500,
    "4,000 _* alternations": "_*" * 2_000,
    "10,000 underscores and letters": "_a" * 5_000,
    "10,000 tildes": "~" * 10_000,
    "10,000 angle brackets": "<" * 10_000,
    "a long URL": "https://example.com/" + "a" * 9_000,
    "many URLs": " ".join(f"https://e{i}.example.com" for i in range(400)),
}


@pytest.mark.parametrize("text", PATHOLOGICAL.values(), ids=PATHOLOGICAL.keys())
def test_pathological_text_renders_in_bounded_time(text, settings):
    assert len(text) <= settings.CHAT_MAX_TEXT_LENGTH  # what a message can hold
    # A bound against pathological (super-linear) blowup in the parser or the sanitizer, not a speed
    # test: each of these takes milliseconds; a quadratic path would take seconds or minutes.
    started = time.perf_counter()
    html = render_text(text)
    assert time.perf_counter() - started < 1.0
    assert_inert(html)


# ---- properties ----------------------------------------------------------------------------------

# Markdown-ish pieces, some longer than a character (a scheme, `www.`, an entity start), joined.
MARKDOWNISH = st.lists(
    st.sampled_from(list("<>&\"'[]()*_`~#!:/ \n\t.@-+=|\\;0123456789abcxyzABC") + ["http", "www.", "&#"]),
    max_size=200,
).map("".join)
ANY_TEXT = st.one_of(MARKDOWNISH, st.text(max_size=200))


@settings(max_examples=500, deadline=None)
@given(ANY_TEXT)
@example("[x](javascript:alert(1))")
@example("<img src=x onerror=alert(1)>")
def test_any_text_renders_to_inert_html_that_is_already_clean(text):
    html = render_text(text)
    assert_inert(html)
    assert nh3.clean(html, **SANITIZER_OPTIONS) == html


PLAINISH = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("abcXYZ019 ,?!'\"\n") + ["\u00a0", "\u200d", "\ufe0f", "\u3000", "\u2028", "\x85"]),
        st.characters(categories=["Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Nd", "So", "Sk", "Zs", "Cf", "Cc"]),
    ),
    max_size=80,
)


@settings(max_examples=2000, deadline=None)
@given(PLAINISH)
@example("ok see you at 5")
@example("ok 👍🏽\nsee you")
@example("5 pm")
def test_the_fast_path_gives_what_the_full_path_gives(text):
    fast = _plain(text)
    if fast is not None:
        assert fast == _SANITIZER.clean(_MARKDOWN.render(text))


def test_the_fast_path_takes_typical_plain_text():
    assert _plain("ok see you at 5") == "<p>ok see you at 5</p>\n"
    assert _plain("on my way 🚗\nsorry, late!") == "<p>on my way 🚗<br>\nsorry, late!</p>\n"
    assert _plain("see example.com") is None
    assert _plain("a  \nb") is None
