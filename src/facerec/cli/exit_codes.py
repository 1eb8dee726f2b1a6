"""Exit codes of the ``facerec`` command line.

====  ==========================================================================================
code  meaning
====  ==========================================================================================
0     success (``health``: the service is SERVING)
1     any other error reported by the service (invalid argument, already exists, internal, ...)
2     usage error: bad arguments, or a local file that cannot be read or is not an image
3     not found: the collection, person or (``health``) the named service does not exist
4     rejected: an enrollment refused (FAILED_PRECONDITION); ``import --strict`` with rejected photos
5     unauthenticated or permission denied (API key missing, invalid, or not allowed this collection)
6     unavailable: service unreachable, deadline exceeded, or (``health``) not SERVING
130   interrupted (Ctrl-C); ``import`` prints what it did first
====  ==========================================================================================
"""

from __future__ import annotations

from facerec.sdk import (
    DeadlineExceeded,
    FacerecError,
    FailedPrecondition,
    ImageInputError,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)

OK = 0
ERROR = 1
USAGE = 2
NOT_FOUND = 3
REJECTED = 4
AUTH = 5
UNAVAILABLE = 6
INTERRUPTED = 130  # 128 + SIGINT, as shells report it

EXIT_CODES: dict[type[BaseException], int] = {
    NotFound: NOT_FOUND,
    FailedPrecondition: REJECTED,
    Unauthenticated: AUTH,
    PermissionDenied: AUTH,
    Unavailable: UNAVAILABLE,
    DeadlineExceeded: UNAVAILABLE,
    FacerecError: ERROR,
    ImageInputError: USAGE,
    OSError: USAGE,
}
"""Exception class -> exit code; the nearest class in an exception's MRO wins."""

EPILOG = """exit codes:
  0  success (health: SERVING)
  1  other error reported by the service
  2  usage error, or a local file that cannot be read or is not an image
  3  not found (collection, person; health: unknown service)
  4  rejected: enrollment refused (failed precondition); import --strict with rejections
  5  unauthenticated or permission denied
  6  unavailable or deadline exceeded (health: not SERVING)
130  interrupted (Ctrl-C); import prints what it did first"""


def exit_code_for(error: BaseException) -> int:
    """The exit code of an error: that of its nearest class in :data:`EXIT_CODES`, else 1."""
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return ERROR
