"""The client install is a small fraction of the server install, and both install quickly."""

from __future__ import annotations

import pytest

from tests.install.environments import InstalledEnv

pytestmark = pytest.mark.slow

# The client's site-packages (grpcio, protobuf, numpy, Pillow, facerec: about 100 MiB) against the server's
# (Triton, onnxruntime, scipy, dlib, Qdrant Edge, the model weights: about 750 MiB).
CLIENT_SHARE_AT_MOST = 0.25


def test_the_client_install_is_a_small_fraction_of_the_server_install(
    client_env: InstalledEnv, server_env: InstalledEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    client, server = client_env.size_mib(), server_env.size_mib()
    with capsys.disabled():
        print(
            f"\n[install] pip install facerec: {client:.0f} MiB in site-packages, installed in "
            f"{client_env.install_s:.1f} s; pip install 'facerec[server]': {server:.0f} MiB, "
            f"{server_env.install_s:.1f} s (client/server {client / server:.1%})"
        )
    assert client <= CLIENT_SHARE_AT_MOST * server
