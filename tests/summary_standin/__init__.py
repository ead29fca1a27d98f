"""A summary-service stand-in for tests (Meet's transcription/summary microservice).

Quick start::

    async with SummaryStandin(token="t") as summary:
        summary.reply_job("job-1")            # next v2 call answers {"job_id": "job-1"}
        ... POST summary.v2_url with "Authorization: Bearer t" ...
        assert summary.payloads() == [...]

Or the ``summary_standin`` fixture from :mod:`.plugin`, or ``python -m tests.summary_standin``.
"""

from __future__ import annotations

from .records import ApiVersion, ReceivedCall
from .script import Reply, ReplyKind, ReplyScript
from .server import DEFAULT_TOKEN, V1_PATH, V2_PATH, SummaryStandin

__all__ = [
    "DEFAULT_TOKEN",
    "V1_PATH",
    "V2_PATH",
    "ApiVersion",
    "ReceivedCall",
    "Reply",
    "ReplyKind",
    "ReplyScript",
    "SummaryStandin",
]
