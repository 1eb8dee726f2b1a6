"""The gateway's defaults and limits, as its settings give them to the domain."""

from __future__ import annotations

from dataclasses import dataclass

from facerec.runtime.deadlines import Deadline
from facerec_gateway.enrollment import QualityPolicy


@dataclass(frozen=True)
class RecognitionPolicy:
    """Defaults and limits of the gateway's decisions.

    ``default_threshold`` is the threshold of new collections (the cap of a target FPIR's) and of verification
    between two photos. ``stream_message_timeout_s`` bounds the work of each message of a stream (one person of
    a bulk enrollment, one frame): streams have no deadline of their own unless the client set one, which then
    bounds every message.
    """

    default_threshold: float
    default_collection: str
    quality: QualityPolicy
    stream_message_timeout_s: float

    def message_deadline(self, call_deadline: Deadline) -> Deadline:
        """The deadline of one stream message whose work starts now: the one rule of both streams."""
        return call_deadline.for_message(self.stream_message_timeout_s)
