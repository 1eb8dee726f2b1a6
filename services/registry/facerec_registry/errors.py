"""Errors of the registry's domain, each a subclass of a shared category (see ``facerec.runtime.errors``).

The shared error interceptor maps the category to a gRPC status code; the domain raises these without
knowing about gRPC.
"""

from __future__ import annotations

from facerec.runtime.errors import AlreadyExists, InvalidArgument, NotFound, Unavailable


class InvalidCollectionName(InvalidArgument):
    """A collection name outside ``[A-Za-z0-9][A-Za-z0-9_-]{0,63}``."""


class InvalidCollectionSettings(InvalidArgument):
    """A dimension, model id or threshold that no collection can have."""


class InvalidFace(InvalidArgument):
    """A face that cannot be stored: empty ids, wrong dimension or model, non-finite values."""


class InvalidPerson(InvalidArgument):
    """A malformed person id, or attributes for a person who has no face."""


class InvalidSearch(InvalidArgument):
    """A search outside the limits: top_k, number of queries, vector shape, distance cut-off."""


class InvalidPageRequest(InvalidArgument):
    """A page size out of range or a page token this registry did not issue."""


class CollectionNotFound(NotFound):
    """No collection has this name."""


class PersonNotFound(NotFound):
    """The collection holds no face of this person."""


class CollectionExists(AlreadyExists):
    """A collection of this name exists with other settings."""


class StoreUnavailable(Unavailable):
    """The vector store (a Qdrant server) cannot be reached."""


class FaceNotFound(NotFound):
    """The collection holds no face of this id."""
