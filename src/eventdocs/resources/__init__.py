"""Resource declarations, mesh-style, compiled once into frozen specs.

A resource is declared as a class (or as an entry of a JSON declarations
file); everything else in eventdocs reads only the compiled
:class:`ResourceSpec`::

    class Post(Resource):
        name = "post"
        version = 1
        requests = ["query", "get", "create", "update", "delete"]

        class schema:
            title = Text(required=True, operators=["contains"], sortable=True)

        class hello:
            endpoint = ("POST", "hello")
            schema = {"name": Text()}
            responses = {200: {"message": Text(required=True, nonnull=True)}}

A subclass is the next version: it inherits fields, requests and custom
requests, adds or overrides fields, and removes one by setting it to ``None``.
Declarations are checked when the class is created, so mistakes surface at
import time as :class:`~eventdocs.errors.DeclarationError`.

The parts: :mod:`.classes` (declaration classes and their compiling),
:mod:`.spec` (the compiled :class:`ResourceSpec`), :mod:`.declarations`
(the JSON file) and :mod:`.targets` (finding them). This module is their
public face: import them from ``eventdocs.resources``.
"""

from eventdocs.resources.classes import (
    STANDARD_REQUESTS,
    Resource,
    StandardRequest,
    compile_resource,
)
from eventdocs.resources.declarations import load_declarations
from eventdocs.resources.spec import CustomRequest, ResourceSpec
from eventdocs.resources.targets import _resolve as _resolve  # read by http/auth.py
from eventdocs.resources.targets import load_target, load_views

__all__ = [
    "STANDARD_REQUESTS",
    "CustomRequest",
    "Resource",
    "ResourceSpec",
    "StandardRequest",
    "compile_resource",
    "load_declarations",
    "load_target",
    "load_views",
]
