"""Build glue that pyproject.toml cannot express: install ``spanreel-autoinstrument.pth``.

The .pth file is the interpreter start-up hook behind ``SPANREEL_ENABLED=1`` (see
``spanreel/_autostart.py``). setuptools has no declarative way to put a file at the root of
site-packages, so both the wheel build (``build_py``) and the PEP 660 editable build
(``editable_wheel``) are extended to add it.
"""

from __future__ import annotations

import os
from typing import Any

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

PTH = "spanreel-autoinstrument.pth"
HERE = os.path.dirname(os.path.abspath(__file__))


class BuildPyWithPth(build_py):
    def run(self) -> None:
        super().run()
        self.copy_file(os.path.join(HERE, PTH), os.path.join(self.build_lib, PTH), preserve_mode=False)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, PTH)]


class EditableWheelWithPth(editable_wheel):
    def _select_strategy(self, name: str, tag: str, build_lib: str) -> Any:
        strategy = super()._select_strategy(name, tag, build_lib)

        class _WithPth:
            def __enter__(self) -> _WithPth:
                strategy.__enter__()
                return self

            def __exit__(self, *exc: object) -> Any:
                return strategy.__exit__(*exc)

            def __call__(self, wheel: Any, files: list[str], mapping: dict[str, str]) -> None:
                strategy(wheel, files, mapping)
                with open(os.path.join(HERE, PTH), "rb") as f:
                    wheel.writestr(PTH, f.read())

        return _WithPth()


setup(cmdclass={"build_py": BuildPyWithPth, "editable_wheel": EditableWheelWithPth})
