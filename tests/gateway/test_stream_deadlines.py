"""The one rule that bounds each message of a stream (a person of a bulk enrollment, a frame)."""

from __future__ import annotations

import math
import time

from facerec.runtime.deadlines import Deadline
from facerec_gateway.enrollment import QualityPolicy
from facerec_gateway.policy import RecognitionPolicy

POLICY = RecognitionPolicy(
    default_threshold=0.6,
    default_collection="default",
    quality=QualityPolicy(40, 40, 0.5),
    stream_message_timeout_s=60.0,
)


def test_a_stream_without_a_deadline_gives_each_message_the_message_timeout() -> None:
    deadline = POLICY.message_deadline(Deadline(math.inf))
    assert 59.0 < deadline.remaining() <= 60.0


def test_a_deadline_the_client_set_bounds_every_message() -> None:
    call = Deadline.after(5.0)
    assert POLICY.message_deadline(call) == call


def test_each_message_starts_its_own_clock() -> None:
    call = Deadline(math.inf)
    first = POLICY.message_deadline(call)
    time.sleep(0.01)
    assert POLICY.message_deadline(call).expires_at > first.expires_at and not call.expired()
