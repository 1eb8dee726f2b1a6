"""Console script `facerec-embedder`: run the embedder service until SIGTERM/SIGINT."""

from __future__ import annotations

from collections.abc import Sequence

from facerec.runtime.entrypoint import run_service
from facerec_embedder.app import EmbedderApp
from facerec_embedder.settings import EmbedderSettings


def main(argv: Sequence[str] | None = None) -> int:
    return run_service(
        prog="facerec-embedder",
        description=(EmbedderApp.__doc__ or "").strip(),
        settings_cls=EmbedderSettings,
        make_app=EmbedderApp,
        argv=argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
