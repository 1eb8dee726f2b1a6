"""Console script `facerec-gateway`: run the gateway service until SIGTERM/SIGINT."""

from __future__ import annotations

from collections.abc import Sequence

from facerec.runtime.entrypoint import run_service
from facerec_gateway.app import GatewayApp
from facerec_gateway.settings import GatewaySettings


def main(argv: Sequence[str] | None = None) -> int:
    return run_service(
        prog="facerec-gateway",
        description=(GatewayApp.__doc__ or "").strip(),
        settings_cls=GatewaySettings,
        make_app=GatewayApp,
        argv=argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
