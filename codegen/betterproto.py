"""Run the betterproto2 protoc plugin and shape its output into our generated modules.

betterproto2 writes one package per proto package (``centrifugal/centrifugo/proxy/__init__.py``)
plus a shared ``message_pool.py``. We flatten that into ``proxy.py`` / ``api.py`` next to a
``_message_pool.py``, and (unless ``plain``) wire our straight-line codecs into every class.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

from .codec import RUNTIME_NAMES, CodecEmitter
from .schema import ProtoFile, Schema, SchemaError

PLUGIN_OPTIONS = "client_generation=async,server_generation=async"


def tool_path() -> str:
    """PATH with this interpreter's scripts first: the plugin runs ``ruff`` from PATH."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def run_plugin(proto_dir: Path, schema: Schema) -> dict[str, str]:
    """Run protoc with the betterproto2 plugin; returns module name -> source."""
    plugin = Path(sys.executable).parent / "protoc-gen-python_betterproto2"
    if not plugin.exists():
        raise SchemaError(f"betterproto2-compiler is not installed ({plugin} is missing)")
    with tempfile.TemporaryDirectory() as tmp:
        old_path = os.environ.get("PATH", "")
        os.environ["PATH"] = tool_path()
        # The plugin lists every file it writes on stderr: keep that (and protoc's messages)
        # aside, and show it only when protoc fails.
        log = Path(tmp, "stderr.log").open("w+b")  # noqa: SIM115  (closed in finally)
        saved_stderr = os.dup(2)
        sys.stderr.flush()
        os.dup2(log.fileno(), 2)
        try:
            status = protoc.main(
                [
                    "protoc",
                    f"-I{proto_dir}",
                    f"--plugin=protoc-gen-python_betterproto2={plugin}",
                    f"--python_betterproto2_out={tmp}",
                    f"--python_betterproto2_opt={PLUGIN_OPTIONS}",
                    *sorted(f.name for f in schema.files),
                ]
            )
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
            os.environ["PATH"] = old_path
            log.seek(0)
            messages = log.read().decode(errors="replace")
            log.close()
        if status != 0:
            sys.stderr.write(messages)
            raise SchemaError(f"protoc with the betterproto2 plugin failed with status {status}")
        out = {}
        for file in schema.files:
            path = Path(tmp, *file.package.split("."), "__init__.py")
            out[file.module] = path.read_text()
        return out


def split_services(source: str, file: ProtoFile, header: str) -> tuple[str, str | None]:
    """Move the gRPC service classes (grpclib stubs and bases) out of a generated module.

    betterproto2 writes them next to the messages, which makes importing the messages import
    grpclib, h2, hpack and asyncio (about 40 ms, BENCHMARKS.md "Issue 17"). They go to a
    module of their own, ``<module>_grpc.py``, which the public modules load on first use; the
    message module lists their names in ``SERVICE_CLASSES``. Returns the message module and the
    service module (None when the file declares no service).
    """
    tree = ast.parse(source)
    services = [
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        and any(ast.unparse(base).startswith("betterproto2_grpclib.") for base in node.bases)
    ]
    if not services:
        return source, None
    lines = source.split("\n")
    moved: list[str] = []
    drop: set[int] = set()  # 0-based line numbers
    for node in services:
        assert node.end_lineno is not None
        moved += [*lines[node.lineno - 1 : node.end_lineno], "", ""]
        drop.update(range(node.lineno - 1, node.end_lineno))
    # The services module gets every absolute import; the grpclib ones leave the messages.
    service_imports: list[str] = []
    for statement in tree.body:
        text = ast.unparse(statement)
        if isinstance(statement, ast.Import | ast.ImportFrom):
            imports = not (isinstance(statement, ast.ImportFrom) and statement.level)
        else:
            imports = isinstance(statement, ast.If) and text.startswith("if TYPE_CHECKING:")
        if imports:
            assert statement.end_lineno is not None
            span = range(statement.lineno - 1, statement.end_lineno)
            service_imports += [lines[number] for number in span]
            if "grpclib" in text:
                drop.update(span)
    names = [node.name for node in services]
    kept = "\n".join(line for number, line in enumerate(lines) if number not in drop)
    for name in names:
        if f'    "{name}",\n' not in kept:
            raise SchemaError(
                f"unexpected betterproto2 output for {file.name}: no {name} in __all__"
            )
        kept = kept.replace(f'    "{name}",\n', "", 1)
    kept += f"\n\n#: The gRPC service classes, in {file.module}_grpc (loaded on first use).\n"
    kept += f"SERVICE_CLASSES = {tuple(names)!r}\n"
    module = [
        header.rstrip("\n"),
        f'"""The grpclib service classes of {file.name}: {", ".join(names)}."""',
        "",
        *service_imports,
        "",
        f"from .{file.module} import *",
        "",
        f"__all__ = {tuple(names)!r}",
        "",
        "",
        *moved,
    ]
    return kept, "\n".join(module).rstrip("\n") + "\n"


def shape_module(source: str, schema: Schema, file: ProtoFile, header: str, plain: bool) -> str:
    """Turn betterproto2's package ``__init__`` into our flat module."""
    depth = "." * (file.package.count(".") + 2)
    old_import = f"from {depth}message_pool import default_message_pool"
    if old_import not in source:
        raise SchemaError(f"unexpected betterproto2 output for {file.name}: no {old_import!r}")
    source = source.replace(old_import, "from ._message_pool import default_message_pool")
    source = header + source
    if plain:
        return source

    emitter = CodecEmitter(schema, file)
    lines = source.split("\n")
    tree = ast.parse(source)
    by_name = {m.py_name: m for m in file.messages}
    classes = [
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        and any(ast.unparse(base) == "betterproto2.Message" for base in node.bases)
    ]
    missing = set(by_name) - {c.name for c in classes}
    if missing:
        raise SchemaError(f"betterproto2 did not generate classes {sorted(missing)}")
    # Insert from the bottom up so that earlier line numbers stay valid.
    for node in sorted(classes, key=lambda n: n.lineno, reverse=True):
        assert node.end_lineno is not None
        members = emitter.class_members(by_name[node.name])
        lines[node.end_lineno : node.end_lineno] = members.rstrip("\n").split("\n")
    anchor = lines.index("import betterproto2")
    imports = ["from typing import Self", "", "from .. import _codec_compiler, _runtime"]
    imports += [f"_rt_{name} = _runtime.{name}" for name in RUNTIME_NAMES]
    lines[anchor + 1 : anchor + 1] = imports
    return "\n".join(lines) + "\n" + emitter.module_code()


def ruff_format(source: str) -> str:
    """Format generated code the same way every time (pinned ruff, isolated config)."""
    return subprocess.run(
        ["ruff", "format", "--isolated", "--line-length", "100", "-"],
        input=source,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PATH": tool_path()},
    ).stdout
