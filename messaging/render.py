"""Message text to safe HTML, once, when a message is stored or edited."""

import nh3
from markdown_it import MarkdownIt

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": True, "breaks": True}).enable("linkify")


def render_text(text: str) -> str:
    return nh3.clean(
        _markdown.render(text), link_rel="noopener nofollow ugc", set_tag_attribute_values={"a": {"target": "_blank"}}
    )
