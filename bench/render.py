"""The cost of `messaging.render.render_text` per message, in this process (`make bench` prints it first).

`python -m bench.render` runs it alone (about a second). Each kind of text is rendered `count`
times over a few variants; `mixed` is a day's traffic: mostly short plain lines, some links, some
markdown. Plain lines take the fast path; `plain_full` is what they would cost without it.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from messaging.render import _MARKDOWN, _SANITIZER, render_text

PLAIN = ["ok see you at 5", "lol 😂", "on my way\nsorry, running late", "Sounds good, thanks!", "who's in?"]
LINK = [
    "see https://example.com/docs/setup?tab=linux for the steps",
    "www.example.org has the slides",
    "mail bob@example.com about it",
]
MARKDOWN = [
    "**heads up**: the build is *red* again, run `make test`",
    "try this:\n```\nmake bench\nmake chaos\n```\n> it took 5 minutes here",
    "- milk\n- eggs\n- ~~bread~~ got it",
]
MIX = PLAIN * 14 + LINK * 3 + MARKDOWN * 3  # 70 % plain, 15 % link, 15 % markdown


def _us_per_message(render: Any, texts: list[str], count: int) -> float:
    batch = list(itertools.islice(itertools.cycle(texts), count))
    started = time.perf_counter()
    for text in batch:
        render(text)
    return (time.perf_counter() - started) / count * 1e6


def measure(count: int = 2_000, mixed: int = 5_000) -> dict[str, Any]:
    def full(text: str) -> str:
        return _SANITIZER.clean(_MARKDOWN.render(text))

    render_text(MIX[0])  # warm: first calls compile linkify-it's patterns
    full(LINK[0])
    return {
        "plain_us": _us_per_message(render_text, PLAIN, count),
        "plain_full_us": _us_per_message(full, PLAIN, count),
        "link_us": _us_per_message(render_text, LINK, count),
        "markdown_us": _us_per_message(render_text, MARKDOWN, count),
        "mixed_us": _us_per_message(render_text, MIX, mixed),
        "mixed_messages": mixed,
    }


def rows(render: dict[str, Any]) -> list[list[str]]:
    """Rows for bench.run's table."""
    return [
        [
            "R",
            "render µs/message: plain / link / markdown",
            f"{render['plain_us']:.1f} / {render['link_us']:.1f} / {render['markdown_us']:.1f}",
            "",
            "",
        ],
        ["R", "  plain without the fast path µs", f"{render['plain_full_us']:.1f}", "", ""],
        [
            "R",
            f"  mixed ({render['mixed_messages']:,}: 70% plain) µs/message",
            f"{render['mixed_us']:.1f}",
            "",
            "",
        ],
    ]


def summary(render: dict[str, Any]) -> str:
    return (
        f"render: {render['plain_us']:.1f} µs/message (plain), {render['link_us']:.1f} (link), "
        f"{render['markdown_us']:.1f} (markdown), {render['mixed_us']:.1f} (mixed); "
        f"plain without the fast path {render['plain_full_us']:.1f}"
    )


if __name__ == "__main__":
    print(summary(measure()))
