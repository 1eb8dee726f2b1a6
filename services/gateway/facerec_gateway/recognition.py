"""The gateway's domain, assembled: every public operation, each in the module of its job.

=====================  ==================================================================================
module                 job
=====================  ==================================================================================
``domain``             the values shared by the jobs (faces, collections, stored faces, people)
``collections``        tenant names -> registry names, decision settings, the collection cache, the default
                       collection created on first use; Create/Get/List/Update/DeleteCollection
``enrollment``         the quality gates and the face of each photo; Enroll
``bulk_enrollment``    BulkEnroll: several people at a time, each with its own deadline
``identification``     Identify and IdentifyStream: search, applied threshold, margin, one identity per photo
``verification``       Verify (1:1, a fixed threshold) and Detect
``people``             Get/List/Update/DeletePerson
``faces``              the faces of a person: ListFaces, and corrections (DeleteFace, MoveFace)
``audit``              ListAuditEvents: the tenant's audit record under its own collection names
``face_metadata``      what enrollment stores beside each face (photo, quality, box), read back by ``faces``
``calibration``        CalibrateCollection over the collection's own faces
``clustering``         ClusterFaces: photos' faces grouped into new people through a working collection
``cluster_graph``      the pure cut of the faces' neighbour links into groups (Chinese whispers)
``decisions``          the pure decision rules (thresholds that follow the gallery's size, margins, assignment)
``clients``            the seams: the embedder and the registry as Protocols in domain values, and their gRPC
                       clients
=====================  ==================================================================================

Nothing here knows gRPC: callers pass the tenant (from authentication) and a ``Deadline`` (from the incoming
call), and errors are domain errors. The servicer converts messages (``conversions``).
"""

from __future__ import annotations

from facerec_gateway.audit import Audit
from facerec_gateway.bulk_enrollment import BulkEnroller
from facerec_gateway.calibration import Calibrator
from facerec_gateway.clients import Embedder, Registry
from facerec_gateway.clustering import Clusterer
from facerec_gateway.collections import CollectionCache, Collections
from facerec_gateway.enrollment import Enroller
from facerec_gateway.faces import Faces
from facerec_gateway.identification import Identifier
from facerec_gateway.people import People
from facerec_gateway.policy import RecognitionPolicy
from facerec_gateway.verification import Verifier


class FaceRecognition:
    """Every public operation of facerec, over the embedder and the registry."""

    def __init__(
        self, embedder: Embedder, registry: Registry, policy: RecognitionPolicy, cache: CollectionCache | None = None
    ) -> None:
        self.policy = policy
        self.collections = Collections(
            embedder,
            registry,
            default_collection=policy.default_collection,
            default_threshold=policy.default_threshold,
            cache=cache,
        )
        self.enroller = Enroller(embedder, registry, self.collections, policy.quality)
        self.bulk = BulkEnroller(self.enroller, policy)
        self.identifier = Identifier(embedder, registry, self.collections, policy)
        self.verifier = Verifier(embedder, registry, self.collections, policy)
        self.people = People(registry, self.collections)
        self.faces = Faces(registry, self.collections)
        self.audit = Audit(registry, self.collections)
        self.calibrator = Calibrator(registry, self.collections)
        # Clustering embeds its photos as enrollment does, waiting out the embedder's overload refusals.
        self.clusterer = Clusterer(self.enroller.embed_waiting, registry, self.collections, policy)
