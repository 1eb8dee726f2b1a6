"""The service runtime every facerec service stands on.

- :mod:`.settings`: the settings base (environment variables, documented in ``--help``);
- :mod:`.server`: the aio server factory and the process lifecycle (health, reflection, metrics, signals);
- :mod:`.interceptors`: request ids, structured logs, metrics and the domain-error table at the boundary;
- :mod:`.channels`: outbound channels with deadlines, retries of UNAVAILABLE and request-id propagation;
- :mod:`.errors`: the domain error categories and their status codes.
"""
