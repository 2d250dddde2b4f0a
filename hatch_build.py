"""Build hook: compile the optional C codec ``centrifugo_types._speedups`` into the wheel.

Why a hatch hook and not setuptools: the package is pure Python apart from one optional C file,
and hatchling already builds it (editable installs included). The hook compiles that file with
setuptools' ``build_ext`` (which knows every platform's compiler and flags) and, where no C
compiler works, warns and leaves the wheel pure Python: the package then runs its pure-Python
codec, with the same results (see ``centrifugo_types._codec_compiler``).

``CENTRIFUGO_TYPES_NO_EXTENSION=1`` at build time skips the extension.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = "centrifugo_types/_speedups.c"


class SpeedupsBuildHook(BuildHookInterface):  # type: ignore[misc]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or os.environ.get("CENTRIFUGO_TYPES_NO_EXTENSION"):
            return
        self._temp = tempfile.mkdtemp(prefix="centrifugo-types-build-")
        try:
            built = self._compile(Path(self._temp))
        except Exception as exc:  # no compiler, no headers: the pure-Python codec is used
            print(
                f"centrifugo-types: the C codec ({SOURCE}) was not built, the pure-Python "
                f"codec will be used: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
            return
        target = f"centrifugo_types/{built.name}"
        if version == "editable":
            # An editable install imports the package from the source tree. A new file (not
            # one written over): a process running the old one keeps its mapping intact.
            final = Path(self.root) / target
            partial = final.with_name(final.name + ".partial")
            shutil.copy2(built, partial)
            os.replace(partial, final)
        else:
            build_data["force_include"][str(built)] = target
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        temp = getattr(self, "_temp", None)
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)

    def _compile(self, temp: Path) -> Path:
        from setuptools import Distribution, Extension
        from setuptools.command.build_ext import build_ext

        cwd = os.getcwd()
        os.chdir(self.root)
        try:
            extension = Extension("centrifugo_types._speedups", [SOURCE])
            dist = Distribution({"name": "centrifugo-types", "ext_modules": [extension]})
            command = build_ext(dist)
            command.build_lib = str(temp / "lib")
            command.build_temp = str(temp / "temp")
            command.ensure_finalized()
            command.run()
            return Path(command.get_ext_fullpath(extension.name)).resolve()
        finally:
            os.chdir(cwd)
