"""Regenerate the Python code of every .proto under protos/ into src/ (one package, committed).

    python scripts/gen_protos.py            # write src/facerec/{v1,embedder/v1,registry/v1}
    python scripts/gen_protos.py --check    # exit 1 when the committed code differs from a fresh generation

Generates messages (`_pb2.py`), services (`_pb2_grpc.py`) and type stubs for both (mypy-protobuf).
"""

from __future__ import annotations

import argparse
import filecmp
import os
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
DEFAULT_OUT = ROOT / "src"
GENERATED_PACKAGES = ("facerec/v1", "facerec/embedder/v1", "facerec/registry/v1")


def generate(out: Path, proto_root: Path = PROTO_ROOT) -> None:
    """Compile every proto under ``proto_root`` into ``out``, replacing what an earlier generation left there."""
    for package in GENERATED_PACKAGES:
        folder = out / package
        if folder.exists():
            for path in folder.iterdir():
                if path.is_file():
                    path.unlink()
        folder.mkdir(parents=True, exist_ok=True)
    # protoc finds its plugins (protoc-gen-mypy) on PATH: put this interpreter's scripts folder first.
    scripts = str(Path(sys.executable).parent)
    if not os.environ.get("PATH", "").startswith(scripts):
        os.environ["PATH"] = f"{scripts}{os.pathsep}{os.environ.get('PATH', '')}"
    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "grpc_tools.protoc",
        f"--proto_path={proto_root}",
        f"--proto_path={well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *(str(p.relative_to(proto_root)) for p in sorted(proto_root.rglob("*.proto"))),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for package in GENERATED_PACKAGES:
        for parent in _package_chain(out, package):
            (parent / "__init__.py").touch()


def _package_chain(out: Path, package: str) -> list[Path]:
    parts = Path(package).parts
    return [out.joinpath(*parts[: i + 1]) for i in range(len(parts))]


def drift(committed: Path = DEFAULT_OUT, proto_root: Path = PROTO_ROOT) -> list[str]:
    """Files of the generated packages that differ between ``committed`` and a fresh generation (or exist in
    only one of them). Empty when the committed code is up to date."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh, proto_root)
        differences: list[str] = []
        for package in GENERATED_PACKAGES:
            names = {p.name for p in (fresh / package).glob("*")} | {p.name for p in (committed / package).glob("*")}
            for name in sorted(names - {"__pycache__"}):
                a, b = fresh / package / name, committed / package / name
                if not (a.is_file() and b.is_file() and filecmp.cmp(a, b, shallow=False)):
                    differences.append(f"{package}/{name}")
        return differences


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output root (default: src/)")
    parser.add_argument("--check", action="store_true", help="compare with a fresh generation, write nothing")
    args = parser.parse_args(argv)
    if args.check:
        stale = drift(args.out)
        if stale:
            print("generated code is stale; run: python scripts/gen_protos.py", *stale, sep="\n  ", file=sys.stderr)
            return 1
        print("generated code is up to date")
        return 0
    generate(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
