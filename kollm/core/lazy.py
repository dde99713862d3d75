"""A package's public names, imported from its modules on first use (PEP 562).

`import kollm.config` reads every package's config section, which runs every package's `__init__`; an
`__init__` that imported its modules eagerly would load torch, transformers and TRL for `kollm --help`.
So an `__init__` lists its names and the module each lives in, and `from kollm.finetune import finetune_task`
imports `kollm.finetune.trainer` only then.
"""

from __future__ import annotations

import importlib


def public_api(package: str, modules: dict[str, str], submodules: str = "", eager: tuple[str, ...] = ()):
    """`(__getattr__, __dir__)` for `package`, whose public names are `modules` (module -> its names,
    space-separated), the `submodules` themselves (space-separated: a namespace such as `prompts` or `harness`),
    and `eager`, the names its `__init__` defines itself."""
    where = {name: module for module, names in modules.items() for name in names.split()}
    whole = set(submodules.split())

    def __getattr__(name: str):
        if name in whole:
            return importlib.import_module(f"{package}.{name}")
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{where[name]}"), name)

    def __dir__() -> list[str]:
        return sorted({*where, *whole, *eager})

    return __getattr__, __dir__
