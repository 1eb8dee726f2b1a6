"""Bulk enrollment: a stream of people enrolled several at a time, every rejection and refusal reported.

Each request (one person) gets its own deadline when its work starts (``policy.message_deadline``); a request
that runs out of it, or that is itself wrong (an invalid person id, no photo), is reported as refused and the
stream goes on. The stream ends with an error only when the call's own deadline passes or something that
concerns every request fails (a missing collection, a collection the key may not use, a dependency down).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Sequence
from dataclasses import dataclass, field

from facerec.runtime import errors
from facerec.runtime.deadlines import Deadline
from facerec_gateway.auth import Tenant
from facerec_gateway.enrollment import Enroller, EnrollRequest, PhotoResult
from facerec_gateway.policy import RecognitionPolicy

# Photos of a bulk enrollment being enrolled at once: enough to keep the embedder's detection threads and its
# batches full, few enough that a person's own deadline is not spent queued behind many others' photos.
BULK_PHOTOS_IN_FLIGHT = 16


@dataclass(frozen=True)
class BulkRejection:
    """A photo not enrolled (``photo``), or a whole request refused (``error``: why)."""

    person_id: str
    request_index: int
    photo: PhotoResult | None = None
    error: str = ""


@dataclass
class BulkEnrollment:
    """The summary of a stream: requests and photos received, faces and people enrolled, what was not."""

    requests: int = 0
    photos: int = 0
    faces_enrolled: int = 0
    people_enrolled: int = 0
    rejected: list[BulkRejection] = field(default_factory=list)


class BulkEnroller:
    """Enrolls a stream of people over an :class:`Enroller`, at most ``photos_in_flight`` photos at once."""

    def __init__(
        self, enroller: Enroller, policy: RecognitionPolicy, photos_in_flight: int = BULK_PHOTOS_IN_FLIGHT
    ) -> None:
        self.enroller = enroller
        self.policy = policy
        self.photos_in_flight = photos_in_flight

    async def bulk_enroll(
        self, tenant: Tenant, requests: AsyncIterable[EnrollRequest], call_deadline: Deadline
    ) -> BulkEnrollment:
        """Enroll every person of the stream; the summary once the stream ends and every person is done."""
        summary = BulkEnrollment()
        people: set[str] = set()
        slots = _PhotoSlots(self.photos_in_flight)
        tasks: list[asyncio.Task[None]] = []

        async def enroll_one(index: int, request: EnrollRequest, taken: int) -> None:
            try:
                deadline = self.policy.message_deadline(call_deadline)
                enrolled = await self.enroller.enroll(tenant, request, deadline, atomic=False)
            except errors.InvalidArgument as error:  # this request is wrong; the others may be right
                summary.rejected.append(BulkRejection(request.person_id, index, error=error.message))
                return
            except errors.DeadlineExceeded as error:
                if call_deadline.expired():
                    raise
                message = f"{error.message} (each request: {self.policy.stream_message_timeout_s:g} s)"
                summary.rejected.append(BulkRejection(request.person_id, index, error=message))
                return
            finally:
                await slots.release(taken)
            summary.faces_enrolled += enrolled.faces_enrolled
            if enrolled.faces_enrolled:
                people.add(request.person_id)
            summary.rejected.extend(
                BulkRejection(request.person_id, index, photo=photo) for photo in enrolled.photos if not photo.enrolled
            )

        try:
            async for request in requests:
                taken = await slots.acquire(len(request.photos))
                summary.requests += 1
                summary.photos += len(request.photos)
                tasks.append(asyncio.create_task(enroll_one(summary.requests - 1, request, taken)))
                _raise_first_failure(tasks)
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        summary.people_enrolled = len(people)
        summary.rejected.sort(key=lambda r: (r.request_index, r.photo.photo_index if r.photo else 0))
        return summary


class _PhotoSlots:
    """A budget of photos in flight: a request takes as many slots as it has photos (at most the whole budget,
    so a person with more photos than the budget waits for an empty pipeline instead of forever)."""

    def __init__(self, photos: int) -> None:
        self._capacity = photos
        self._free = photos
        self._changed = asyncio.Condition()

    async def acquire(self, photos: int) -> int:
        """Waits until ``photos`` slots are free, takes them and returns how many were taken."""
        taken = max(1, min(photos, self._capacity))
        async with self._changed:
            await self._changed.wait_for(lambda: self._free >= taken)
            self._free -= taken
        return taken

    async def release(self, taken: int) -> None:
        """Gives ``taken`` slots back."""
        async with self._changed:
            self._free += taken
            self._changed.notify_all()


def _raise_first_failure(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Surface an unexpected error (e.g. a dependency down) of a finished bulk task without waiting for all."""
    for task in tasks:
        if task.done() and not task.cancelled():
            error = task.exception()
            if error is not None:
                raise error
