"""Console script `facerec-registry`: run the registry service until SIGTERM/SIGINT."""

from __future__ import annotations

from collections.abc import Sequence

from facerec.runtime.entrypoint import run_service
from facerec_registry.app import RegistryApp
from facerec_registry.settings import RegistrySettings


def main(argv: Sequence[str] | None = None) -> int:
    return run_service(
        prog="facerec-registry",
        description=(RegistryApp.__doc__ or "").strip(),
        settings_cls=RegistrySettings,
        make_app=RegistryApp,
        argv=argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
