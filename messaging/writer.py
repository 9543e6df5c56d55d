"""Group commit for text messages: the sends of many sockets stored together.

Every `Send` of a text message is queued; one writer per process stores everything queued
in one worker-thread hop and one transaction (each message in a savepoint of its own, so one
refusal loses nothing else; a batch of one is simply its own transaction), then publishes the
committed events. Nothing waits for a batch to fill: the first send starts a write at once, and
sends that arrive meanwhile make up the next one.
Images keep their own path: decoding them must not hold the database's write lock.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from django.db import transaction

from messaging import actions
from messaging.events import run_action
from messaging.seq import seq_take


class SendWriter:
    def __init__(self) -> None:
        self._queue: list[tuple[dict[str, Any], asyncio.Future]] = []
        self._task: asyncio.Task | None = None

    async def send(self, **kwargs: Any) -> tuple[Any, bool]:
        """`actions.message_send(**kwargs)`, stored with whatever else is queued; returns its result."""
        future = asyncio.get_running_loop().create_future()
        self._queue.append((kwargs, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                outcomes = list(await run_action(_store, batch=[kwargs for kwargs, _ in batch]))
            except Exception as error:  # the database itself failed: every sender hears of it
                outcomes = [error] * len(batch)
            if len(outcomes) != len(batch):  # a bug: no sender may wait for ever
                outcomes = [RuntimeError("the writer lost track of this message")] * len(batch)
            for (_, future), outcome in zip(batch, outcomes):
                if future.done():  # its sender went away meanwhile
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)


def _store_each(batch: list[dict[str, Any]], *, first_seq: int | None = None) -> list[Any]:
    outcomes: list[Any] = []
    for index, kwargs in enumerate(batch):
        seq = None if first_seq is None else first_seq + index  # a refused message leaves its number unused
        try:  # message_send writes in a transaction (a savepoint in a batch) and refuses before writing
            outcomes.append(actions.message_send(**kwargs, seq=seq))
        except Exception as error:  # this message only; the others go on
            outcomes.append(error)
    return outcomes


def _store(*, batch: list[dict[str, Any]]) -> list[Any]:
    """Store a batch in one transaction; if its commit fails (say a group was deleted under
    it), store the messages one transaction each, so one bad message cannot sink the rest."""
    if len(batch) == 1:  # message_send's own transaction is enough: no savepoint inside another
        return _store_each(batch)
    try:
        with transaction.atomic():  # a rolled-back batch publishes nothing: its events wait for commit
            last = seq_take(len(batch))  # one range for the batch, in commit order (messaging.seq)
            return _store_each(batch, first_seq=last - len(batch) + 1)
    except Exception:
        pass
    outcomes: list[Any] = []
    for kwargs in batch:
        try:  # exactly one outcome per message, whether it or its commit fails
            with transaction.atomic():
                outcome = _store_each([kwargs])[0]
        except Exception as error:
            outcome = error
        outcomes.append(outcome)
    return outcomes


_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SendWriter] = weakref.WeakKeyDictionary()


def get_writer() -> SendWriter:
    loop = asyncio.get_running_loop()
    writer = _writers.get(loop)
    if writer is None:
        writer = _writers[loop] = SendWriter()
    return writer
