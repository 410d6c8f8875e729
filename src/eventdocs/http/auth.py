"""Bearer tokens with scopes per resource: who may read, write, schedule, administer.

A tokens file (``serve --tokens FILE``), or a ``"tokens"`` key beside
``"resources"`` in a JSON declarations file, or a module-level ``tokens``
list in a Python target::

    {"tokens": [
        {"name": "ci", "sha256": "<hex digest of the token>",
         "scopes": {"post": ["read", "write"], "*": ["read"]}},
        {"name": "ops", "token": "plain text works too", "scopes": {"*": ["admin"]}}
    ]}

Only digests are kept (store ``sha256`` where you can; ``eventdocs token
NAME SCOPE...`` makes a token and its entry). A request's token is
hashed and compared with every known digest by :func:`hmac.compare_digest`,
never stopping early, so the time taken says nothing about which digest came
close; the token itself is never logged nor echoed.

Scopes are granted per resource name, ``"*"`` meaning every resource; a
token's scopes on a resource are the union of both. What each request needs:

* ``GET`` of documents, queries, history, ``_scheduled``: ``read``;
* ``POST``, ``PUT``, ``PATCH``, ``DELETE``, revert, ``_bulk``: ``write``, and
  ``schedule`` too with a ``Caesium-TOA`` in the future;
* ``DELETE /_scheduled/{seq}`` (cancel): ``schedule``;
* a custom request: ``read`` for ``GET``, else ``write``, or the ``scope``
  its declaration names;
* ``/openapi.json``: ``read`` on some resource; ``/healthz``: nothing.

``admin`` grants every scope on its resources, and is the one scope that
operations declared ``scope = "admin"`` (replays, maintenance) accept. No
valid token answers 401 with ``WWW-Authenticate: Bearer``; a token without
the scope answers 403; both are problem+json.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import falcon
import falcon.asgi
import msgspec

from eventdocs.errors import DeclarationError, ErrorDetail, InvalidRequest
from eventdocs.http.custom import CustomResource
from eventdocs.http.errors import ProblemError
from eventdocs.http.health import HealthResource
from eventdocs.http.routes import CollectionResource, DocumentResource, NotDeclared
from eventdocs.http.views import ViewResource
from eventdocs.http.wire import toa_header
from eventdocs.service import Service

__all__ = [
    "SCOPES",
    "BearerAuth",
    "Token",
    "Tokens",
    "hash_token",
    "load_tokens",
    "new_token",
    "read_tokens_file",
    "secure_openapi",
    "tokens_of_target",
]

SCOPES: Final = ("read", "write", "schedule", "admin")
ANY_RESOURCE: Final = "*"
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_BEARER = re.compile(r"\s*bearer\s+(\S+)\s*", re.IGNORECASE)
_READS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_CHALLENGE: Final = 'Bearer realm="eventdocs"'


def hash_token(token: str) -> str:
    """The hex SHA-256 of ``token``: what a tokens file stores instead of it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Token(msgspec.Struct, frozen=True):
    """A known token: its name, the digest of its secret, its scopes per resource."""

    name: str
    digest: bytes
    scopes: Mapping[str, frozenset[str]]

    def granted(self, resource: str) -> frozenset[str]:
        """The scopes this token holds on ``resource``."""
        return self.scopes.get(resource, frozenset()) | self.scopes.get(ANY_RESOURCE, frozenset())

    def allows(self, resource: str, scopes: Iterable[str]) -> bool:
        """Whether the token holds every one of ``scopes`` on ``resource``."""
        held = self.granted(resource)
        return "admin" in held or all(s in held for s in scopes)


class Tokens:
    """The tokens a server accepts."""

    def __init__(self, tokens: Sequence[Token]) -> None:
        self.tokens = tuple(tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def identify(self, secret: str) -> Token | None:
        """The token whose digest matches ``secret``, comparing with every one."""
        digest = hashlib.sha256(secret.encode("latin-1", "replace")).digest()
        found = None
        for token in self.tokens:
            if hmac.compare_digest(digest, token.digest):
                found = token
        return found

    def check_resources(self, names: Iterable[str]) -> None:
        """Fail on scopes granted on a resource that is not served (a typo grants nothing).

        Raises:
            DeclarationError: naming the token and the resource.
        """
        known = set(names) | {ANY_RESOURCE}
        for token in self.tokens:
            for resource in token.scopes:
                if resource not in known:
                    where = f"tokens.{token.name}.scopes.{resource}"
                    raise DeclarationError(
                        f"{where}: no resource {resource!r} is served",
                        [ErrorDetail(where, f"resources are {', '.join(sorted(known))}")],
                    )


def _fail(path: str, message: str) -> DeclarationError:
    return DeclarationError(f"{path}: {message}", [ErrorDetail(path, message)])


def _token(entry: Any, where: str) -> Token:
    if not isinstance(entry, Mapping):
        raise _fail(where, "expected an object with name, sha256 (or token) and scopes")
    unknown = set(entry) - {"name", "sha256", "token", "scopes"}
    if unknown:
        key = sorted(unknown)[0]
        raise _fail(f"{where}.{key}", "unknown key; keys are name, sha256, token, scopes")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise _fail(f"{where}.name", "expected a non-empty string")
    if ("sha256" in entry) == ("token" in entry):
        raise _fail(where, "give exactly one of sha256 and token")
    if "token" in entry:
        secret = entry["token"]
        if not isinstance(secret, str) or len(secret) < 16:
            raise _fail(f"{where}.token", "expected a string of at least 16 characters")
        digest = hash_token(secret)
    else:
        digest = entry["sha256"]
        if not isinstance(digest, str) or not _HEX_DIGEST.fullmatch(digest.lower()):
            raise _fail(f"{where}.sha256", "expected 64 hex digits (the SHA-256 of the token)")
    scopes = entry.get("scopes")
    if not isinstance(scopes, Mapping) or not scopes:
        raise _fail(f"{where}.scopes", 'expected an object such as {"*": ["read"]}')
    granted: dict[str, frozenset[str]] = {}
    for resource, names in scopes.items():
        path = f"{where}.scopes.{resource}"
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise _fail(path, f"expected a list of scopes ({', '.join(SCOPES)})")
        for scope in names:
            if scope not in SCOPES:
                raise _fail(path, f"unknown scope {scope!r}; scopes are {', '.join(SCOPES)}")
        granted[resource] = frozenset(names)
    return Token(name, bytes.fromhex(digest.lower()), granted)


def load_tokens(data: Any, where: str = "tokens") -> Tokens:
    """The tokens of a parsed tokens file: ``{"tokens": [...]}`` or the list itself.

    Raises:
        DeclarationError: naming the entry and key that is wrong.
    """
    if isinstance(data, Mapping):
        data = data.get("tokens")
    if not isinstance(data, list):
        raise _fail(where, 'expected {"tokens": [...]}')
    tokens = [_token(entry, f"{where}[{i}]") for i, entry in enumerate(data)]
    for i, token in enumerate(tokens):
        if any(t.name == token.name for t in tokens[:i]):
            raise _fail(f"{where}[{i}].name", f"{token.name!r} is used twice")
        if any(t.digest == token.digest for t in tokens[:i]):
            raise _fail(f"{where}[{i}]", "the same token as an earlier entry")
    return Tokens(tokens)


def read_tokens_file(path: str | Path) -> Tokens:
    """The tokens of a JSON tokens file.

    Raises:
        DeclarationError: the file cannot be read or is wrong.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(str(path), f"cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise _fail(str(path), f"not JSON: {exc}") from None
    return load_tokens(data, str(path))


def tokens_of_target(target: str) -> Tokens | None:
    """The tokens a TARGET declares beside its resources, if any.

    A JSON declarations file may have a ``"tokens"`` key; a Python target's
    module a ``tokens`` list of entries.
    """
    if target.endswith(".json"):
        try:
            data = json.loads(Path(target).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # load_target reports what is wrong with the file
        if isinstance(data, Mapping) and "tokens" in data:
            return load_tokens(data["tokens"], f"{target}: tokens")
        return None
    from eventdocs.resources import _resolve

    module, _ = _resolve(target)
    entries = getattr(module, "tokens", None)
    return None if entries is None else load_tokens(entries, f"{target}: tokens")


# -- the middleware -------------------------------------------------------------------


def _unauthorized(detail: str, error: str | None = None) -> ProblemError:
    challenge = _CHALLENGE if error is None else f'{_CHALLENGE}, error="{error}"'
    return ProblemError(
        401,
        detail,
        [ErrorDetail("Authorization", "expected: Bearer <token>")],
        headers={"WWW-Authenticate": challenge},
    )


def _preflight(req: falcon.asgi.Request) -> bool:
    return req.method == "OPTIONS" and req.get_header("Access-Control-Request-Method") is not None


class BearerAuth:
    """Falcon middleware: authenticate every request but ``/healthz``, then check scopes.

    Runs after routing (``process_resource``) so the scope is that of the
    request actually served; a request with no route still needs a valid
    token before it learns that (404).
    """

    def __init__(self, tokens: Tokens, service: Service) -> None:
        """Raises :class:`DeclarationError` for a custom request declaring an unknown scope."""
        self.tokens = tokens
        self.clock = service.clock
        for spec in service.specs:
            for request in spec.custom.values():
                scope = getattr(getattr(spec.declaration, request.name, None), "scope", None)
                if scope is not None and scope not in SCOPES:
                    where = f"{spec.name} v{spec.version} {request.name}.scope"
                    raise _fail(where, f"{scope!r} is not one of {', '.join(SCOPES)}")

    async def process_resource(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: object,
        params: dict[str, Any],
    ) -> None:
        if isinstance(resource, HealthResource) or getattr(resource, "public", False):
            return  # liveness, readiness, the docs page: no data
        if _preflight(req):
            return  # CORS preflights carry no credentials
        header = req.get_header("Authorization")
        if header is None:
            raise _unauthorized("a bearer token is required (Authorization: Bearer <token>)")
        found = _BEARER.fullmatch(header)
        token = None if found is None else self.tokens.identify(found.group(1))
        if token is None:
            raise _unauthorized("the bearer token is not valid", "invalid_token")
        if isinstance(resource, ViewResource):  # a view's rows: read on each of its sources
            for source in resource.sources(params.get("name", "")):
                if not token.allows(source, {"read"}):
                    raise self._forbidden(token, {"read"}, source)
            return
        name, needed = self.needs(req, resource)
        if name is None:
            if needed and not any(token.allows(r, needed) for r in token.scopes):
                raise self._forbidden(token, needed, "any resource")
        elif not token.allows(name, needed):
            raise self._forbidden(token, needed, name)

    def needs(self, req: falcon.asgi.Request, resource: object) -> tuple[str | None, set[str]]:
        """The resource a request concerns (``None``: none in particular), the scopes it needs."""
        method = req.method
        if isinstance(resource, CustomResource):
            spec = resource.documents.spec
            request = resource.requests.get(method)
            declared = getattr(spec.declaration, request.name, None) if request else None
            scope = getattr(declared, "scope", None)
            if scope is None:
                scope = "read" if method in _READS else "write"
            return spec.name, {scope}
        if isinstance(resource, CollectionResource | DocumentResource):
            name = resource.spec.name
            if method in _READS:
                return name, {"read"}
            if method == "DELETE" and (req.uri_template or "").endswith("/_scheduled/{seq}"):
                return name, {"schedule"}
            return name, {"write", "schedule"} if self._scheduled(req) else {"write"}
        if resource is None or isinstance(resource, NotDeclared):
            return None, set()  # authenticated, it learns 404 or 405
        return None, {"read"}  # /openapi.json and other app-wide reads

    def _scheduled(self, req: falcon.asgi.Request) -> bool:
        try:
            toa = toa_header(req)
        except InvalidRequest:
            return False  # the responder answers 400 for it
        return toa is not None and toa > self.clock.now()

    @staticmethod
    def _forbidden(token: Token, needed: set[str], where: str) -> ProblemError:
        wanted = " and ".join(sorted(needed))
        scope = " ".join(sorted(needed))  # RFC 6750 section 3: space-delimited
        return ProblemError(
            403,
            f"token {token.name!r} lacks the {wanted} scope on {where}",
            [ErrorDetail("Authorization", f"needs {wanted} on {where}")],
            headers={
                "WWW-Authenticate": f'{_CHALLENGE}, error="insufficient_scope", scope="{scope}"'
            },
        )


def secure_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the bearer scheme, and 401/403 on every operation but ``/healthz``."""
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "A token from the server's tokens file; scopes per resource: "
        + ", ".join(SCOPES),
    }
    challenge = {"required": True, "schema": {"type": "string"}}
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    responses = components.setdefault("responses", {})
    responses["401"] = {
        "description": "No valid bearer token",
        "headers": {"WWW-Authenticate": challenge},
        "content": problem,
    }
    responses["403"] = {"description": "The token lacks the scope", "content": problem}
    document["security"] = [{"bearer": []}]
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method == "parameters" or not isinstance(operation, dict):
                continue
            if path == "/healthz":
                operation["security"] = []
                continue
            operation["responses"].setdefault("401", {"$ref": "#/components/responses/401"})
            operation["responses"].setdefault("403", {"$ref": "#/components/responses/403"})
    return document


def new_token(
    name: str, scopes: Sequence[str], resource: str = ANY_RESOURCE
) -> tuple[str, dict[str, Any]]:
    """A new random token and its tokens-file entry (which keeps only its digest).

    Raises:
        DeclarationError: an unknown scope or an empty name.
    """
    token = secrets.token_urlsafe(32)
    entry = {"name": name, "sha256": hash_token(token), "scopes": {resource: list(scopes)}}
    load_tokens([entry])  # the scopes are valid
    return token, entry


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m eventdocs.http.auth NAME [SCOPE...]``; ``eventdocs token`` is the same."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0].startswith("-"):
        print("usage: eventdocs token NAME [SCOPE...]", file=sys.stderr)
        raise SystemExit(2)
    try:
        token, entry = new_token(args[0], args[1:] or ["read"])
    except DeclarationError as exc:
        print(f"eventdocs: error: {exc.detail}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"token (give it to the client; it is not stored): {token}", file=sys.stderr)
    print(json.dumps(entry))


if __name__ == "__main__":
    main()
