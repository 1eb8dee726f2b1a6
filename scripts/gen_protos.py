"""Regenerate the Python code of every .proto under protos/ into src/ (one package, committed).

    python scripts/gen_protos.py            # write src/facerec/{v1,embedder/v1,registry/v1}
    python scripts/gen_protos.py --out DIR  # write elsewhere (the drift check compares the two)

Generates messages (`_pb2.py`), services (`_pb2_grpc.py`) and type stubs for both (mypy-protobuf).
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
DEFAULT_OUT = ROOT / "src"
GENERATED_PACKAGES = ("facerec/v1", "facerec/embedder/v1", "facerec/registry/v1")


def proto_files() -> list[Path]:
    """Every .proto under protos/, sorted so that generation is deterministic."""
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(out: Path) -> None:
    """Compile every proto into `out`, replacing what an earlier generation left there."""
    for package in GENERATED_PACKAGES:
        folder = out / package
        if folder.exists():
            for path in folder.iterdir():
                if path.is_file():
                    path.unlink()
        folder.mkdir(parents=True, exist_ok=True)
    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *(str(p.relative_to(PROTO_ROOT)) for p in proto_files()),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for package in GENERATED_PACKAGES:
        for parent in _package_chain(out, package):
            (parent / "__init__.py").touch()


def _package_chain(out: Path, package: str) -> list[Path]:
    parts = Path(package).parts
    return [out.joinpath(*parts[: i + 1]) for i in range(len(parts))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output root (default: src/)")
    args = parser.parse_args(argv)
    # protoc finds its plugins (protoc-gen-mypy) on PATH: put this interpreter's scripts folder first.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    generate(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
