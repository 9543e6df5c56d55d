"""A message's text as typed, rendered once into the safe HTML of `Html` (protocol v2, section 4).

Two maintained libraries, never hand-written HTML filtering: markdown-it-py turns the chat subset of
CommonMark into HTML (raw HTML off, so `<b>` typed by a user stays text), then nh3 (ammonia) cleans
that HTML against an explicit allow-list, whatever markdown-it produced. Either alone should be
enough; the sanitizer is there so that a markdown-it bug or a rule enabled later cannot reach a
browser.

Call `render_text` when a message is stored or edited, never per delivery: it costs tens of
microseconds for a short text, more with links and blocks (see `bench.render`).

Mentions (issue 18) go in as one more inline rule of `_MARKDOWN` (`_MARKDOWN.inline.ruler.before(
"linkify", "mention", ...)`) that emits `<span class="mention">@bob</span>`; the sanitizer already
keeps `span` with that one class and nothing else. `_plain` never sees an `@`, so it needs no change.
"""

from __future__ import annotations

import re
import string
import unicodedata

import nh3
from markdown_it import MarkdownIt

# What may leave the renderer. No `img`, no headings or `hr`, no `class` but the mention one.
TAGS = {"p", "br", "strong", "em", "s", "del", "code", "pre", "blockquote", "ul", "ol", "li", "a", "span"}
ATTRIBUTES = {"a": {"href"}, "ol": {"start"}}
URL_SCHEMES = {"http", "https", "mailto"}
LINK_REL = "noopener nofollow ugc"

SANITIZER_OPTIONS = {
    "tags": TAGS,
    "attributes": ATTRIBUTES,
    "url_schemes": URL_SCHEMES,
    "url_relative": "deny",  # `[x](foo)` or `//host`: no href rather than one relative to the chat page
    "link_rel": LINK_REL,
    "set_tag_attribute_values": {"a": {"target": "_blank"}},
    "allowed_classes": {"span": {"mention"}},
}
_SANITIZER = nh3.Cleaner(**SANITIZER_OPTIONS)


class _ChatMarkdown(MarkdownIt):
    def validateLink(self, url: str) -> bool:  # noqa: N802 - markdown-it's name
        """Only absolute http(s) and mailto links become links; any other `[x](...)` stays text.

        markdown-it's own check already refuses javascript:, vbscript:, file: and data:; this narrows
        it to what the sanitizer keeps, so a refused link shows as typed instead of as a dead `<a>`.
        `url` is normalized and its entities decoded (`&#106;avascript:` arrives as `javascript:`).
        """
        scheme, colon, _ = url.partition(":")
        return bool(colon) and scheme.lower() in URL_SCHEMES


def _build() -> MarkdownIt:
    md = _ChatMarkdown("commonmark", {"html": False, "linkify": True, "breaks": True, "xhtmlOut": False})
    md.enable(["linkify", "strikethrough"])
    # Not for a chat bubble: `# x` and `x\n===` stay text, `---` stays text, `![x](url)` is the
    # text `!` and a link (no remote image is ever embedded), `[x]: url` lines stay visible, and four
    # leading spaces do not make a code block (fenced blocks do).
    md.disable(["heading", "lheading", "hr", "image", "reference", "code", "html_block", "html_inline"])
    # linkify-it also links `ftp://` and `//host`; the sanitizer would strip those hrefs anyway.
    md.linkify.add("ftp:", None)
    md.linkify.add("//", None)
    md.linkify.tlds(_fuzzy_tlds(md.linkify), False)
    return md


# Country domains that are also file extensions people type in a class chat ("open main.py"):
# written without `http://` or `www.`, such a name stays text.
FILE_EXTENSIONS = {"py", "md", "sh", "rs", "pl", "cc", "ai", "ps", "so", "mk", "ml", "do", "am", "in", "gs", "ts"}


def _fuzzy_tlds(linkify) -> list[str]:
    """linkify-it's own top-level domains for links written without a scheme, less FILE_EXTENSIONS:
    its long ones, and every two-letter one its pattern allows."""
    two = re.compile(f"(?:{linkify.tlds_2ch_src_re})")
    pairs = (a + b for a in string.ascii_lowercase for b in string.ascii_lowercase)
    countries = [pair for pair in pairs if two.fullmatch(pair) and pair not in FILE_EXTENSIONS]
    return [*linkify.tlds_default, *countries]


_MARKDOWN = _build()


def render_text(text: str) -> str:
    """The sanitized HTML of a message's plain text; call once, when it is stored or edited."""
    fast = _plain(text)
    if fast is not None:
        return fast
    return _SANITIZER.clean(_MARKDOWN.render(text))


_PLAIN_ASCII = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,?!'\"")
# Letters, digits, combining marks and symbols (emoji, with their skin tones, ZWJ and VS-16).
_PLAIN_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Nd", "So", "Sk"})
_PLAIN_EXTRA = frozenset({"\u200d"})


def _plain(text: str) -> str | None:
    """The rendering of a text that markdown and linkify cannot touch, or None to take the full path.

    Such a text is words and emoji, without `&<>`, without `.:@` (links, mentions), without any
    markdown punctuation, with each line non-empty and without leading or trailing spaces. For it
    markdown-it and nh3 give exactly `<p>line<br>\\nline</p>\\n` (tests/test_render.py checks that
    with hypothesis), some fifty times faster (1 µs against 50). U+00A0 and other whitespace are not accepted
    (`str.strip` and the serializer treat them specially).
    """
    lines = text.split("\n")
    for line in lines:
        if not line or line[0] == " " or line[-1] == " ":
            return None
    for char in text:
        if char in _PLAIN_ASCII or char == "\n":
            continue
        if char < "\x80" or (unicodedata.category(char) not in _PLAIN_CATEGORIES and char not in _PLAIN_EXTRA):
            return None
    return "<p>" + "<br>\n".join(lines) + "</p>\n"
