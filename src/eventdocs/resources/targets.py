"""Targets: where the resources (and views) to serve are found.

A TARGET is a ``.py`` file, ``package.module:attr`` or a ``.json``
declarations file; :func:`load_target` imports it once and gathers its
resources, :func:`load_views` its views bound to them.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from eventdocs.errors import DeclarationError, ErrorDetail
from eventdocs.resources.classes import Resource, _fail, compile_resource
from eventdocs.resources.declarations import load_declarations
from eventdocs.resources.spec import ResourceSpec

_imported: dict[Path, ModuleType] = {}


def _import_file(path: Path) -> ModuleType:
    """Import a ``.py`` file once, with its directory importable (like ``python file.py``)."""
    path = path.resolve()
    if path in _imported:
        return _imported[path]
    if not path.is_file():
        _fail(str(path), "no such file")
    digest = hashlib.sha1(str(path).encode(), usedforsecurity=False).hexdigest()[:8]
    name = f"_eventdocs_target_{re.sub(r'[^A-Za-z0-9_]', '_', path.stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        _fail(str(path), "cannot be imported")
    module = importlib.util.module_from_spec(spec)
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except DeclarationError:
        del sys.modules[name]
        raise
    except Exception as exc:
        del sys.modules[name]
        raise DeclarationError(
            f"{path}: cannot import: {exc}", [ErrorDetail(str(path), str(exc))]
        ) from exc
    _imported[path] = module
    return module


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except DeclarationError:
        raise
    except Exception as exc:
        raise DeclarationError(
            f"{name}: cannot import: {exc}", [ErrorDetail(name, str(exc))]
        ) from exc


def _resolve(target: str) -> tuple[ModuleType, object]:
    """The module TARGET names and the object in it (the module itself without ``:attr``)."""
    module_part, colon, attr = target.partition(":")
    if colon and len(module_part) == 1 and module_part.isalpha():  # C:\path\file.py
        module_part, colon, attr = target, "", ""
    if module_part.endswith(".py") or Path(module_part).is_file():
        module = _import_file(Path(module_part))
    else:
        module = _import_module(module_part)
    obj: object = module
    for part in attr.split(".") if attr else ():
        try:
            obj = getattr(obj, part)
        except AttributeError:
            _fail(target, f"{part!r} not found")
    return module, obj


def _specs_of(obj: object, target: str) -> list[ResourceSpec]:
    if isinstance(obj, ModuleType):
        found = [
            v
            for v in vars(obj).values()
            if isinstance(v, type)
            and issubclass(v, Resource)
            and v.__module__ == obj.__name__
            and v.name is not None
        ]
        return [compile_resource(c) for c in found]
    if isinstance(obj, type) and issubclass(obj, Resource):
        return [compile_resource(obj)]
    if isinstance(obj, ResourceSpec):
        return [obj]
    if isinstance(obj, list | tuple):
        return [s for item in obj for s in _specs_of(item, target)]
    _fail(target, f"expected resources, a list of them or a module, not {type(obj).__name__}")


def load_target(target: str) -> list[ResourceSpec]:
    """The resources a TARGET declares: a ``.py`` file, ``package.module:attr``, or ``.json``.

    Raises:
        DeclarationError: the target cannot be loaded, or two resources share a
            name and version.
    """
    if target.endswith(".json"):
        return load_declarations(Path(target))
    _, obj = _resolve(target)
    specs = _specs_of(obj, target)
    seen: dict[tuple[str, int], ResourceSpec] = {}
    unique: list[ResourceSpec] = []
    for spec in specs:
        key = (spec.name, spec.version)
        if key in seen:
            if seen[key] is spec:
                continue
            _fail(target, f"{spec.name!r} version {spec.version} is declared twice")
        seen[key] = spec
        unique.append(spec)
    return unique


def load_views(target: str) -> list[Any]:
    """The views a TARGET declares, declarative ones bound to its resources.

    A ``.json`` file's ``views`` list (declarative views); a Python target's
    module-level ``views`` list (:class:`~eventdocs.projections.views.View`
    instances, declarative ones from ``declare_view`` among them).

    Raises:
        DeclarationError: naming the view and what is wrong with it.
    """
    from eventdocs.projections.declared import bind_views, parse_views

    specs = load_target(target)  # fails first, with its own message, on a bad file
    if target.endswith(".json"):
        data = json.loads(Path(target).read_text(encoding="utf-8"))
        entries = data.get("views", []) if isinstance(data, Mapping) else []
        views: list[Any] = list(parse_views(entries))
    else:
        module, _ = _resolve(target)
        found = getattr(module, "views", [])
        if not isinstance(found, list | tuple):
            _fail(f"{target}.views", "expected a list")
        views = list(found)
    bind_views(views, specs)
    return views
