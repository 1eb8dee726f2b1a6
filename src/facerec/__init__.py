"""facerec: self-hosted face recognition as gRPC microservices.

Shared code lives here: the generated protobuf package (`facerec.v1`, `facerec.embedder.v1`,
`facerec.registry.v1`), the service runtime (`facerec.runtime`), the Python SDK (`facerec.sdk`) and the
`facerec` command line (`facerec.cli`).
"""

__version__ = "0.1.0"
