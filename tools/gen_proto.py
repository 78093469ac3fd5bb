"""Generate Python code for every contract under proto/ into the madina_proto package.

Run by `make proto`. protoc derives Python import paths from proto paths (`madina/alerts/v1/...`
becomes `madina.alerts.v1`), which would collide with the hand-written `madina` package, so the
generated tree is rooted at `madina_proto` and its imports are rewritten to match. The output is
reproducible for a given grpcio-tools and mypy-protobuf, which `make proto-check` relies on.

Usage: python tools/gen_proto.py [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PACKAGE = "madina_proto"
_IMPORT = re.compile(r"\bmadina\.(\w+)\.(v\d+)\b")


def _rewrite_imports(source: str, *, stub: bool) -> str:
    # In .py files only import lines may change: the serialized descriptors name the proto
    # packages (madina.alerts.v1), which must stay as they are.
    if stub:
        return _IMPORT.sub(rf"{PACKAGE}.\1.\2", source)
    return "".join(
        _IMPORT.sub(rf"{PACKAGE}.\1.\2", line) if line.startswith(("from ", "import ")) else line
        for line in source.splitlines(keepends=True)
    )


def generate(out_dir: Path) -> None:
    # The mypy plugins are console scripts installed next to this interpreter.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        include = str(Path(protoc.__file__).parent / "_proto")
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--grpc_python_out={tmp}",
            f"--mypy_out=quiet:{tmp}",
            f"--mypy_grpc_out=quiet:{tmp}",
            *protos,
        ]
        if protoc.main(args) != 0:
            sys.exit("protoc failed")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        shutil.copytree(Path(tmp) / "madina", out_dir)
    for path in sorted(out_dir.rglob("*.py*")):
        path.write_text(_rewrite_imports(path.read_text(), stub=path.suffix == ".pyi"))
    for directory in [out_dir, *sorted(p for p in out_dir.rglob("*") if p.is_dir())]:
        (directory / "__init__.py").touch()
    (out_dir / "__init__.py").write_text(
        '"""Generated protobuf and gRPC code. Do not edit: run `make proto`."""\n'
    )
    (out_dir / "py.typed").touch()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / PACKAGE)
    generate(parser.parse_args().out)


if __name__ == "__main__":
    main()
