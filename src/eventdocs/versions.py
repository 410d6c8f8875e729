"""Versions of a resource: one log and one master collection, a view of them each.

``/v1/article`` and ``/v2/article`` read and write the same documents (SPEC
section 10). What differs is what each version sees and checks:

* every event records the version that wrote it, as ``meta["version"]``
  (an event read back tells which declaration its body was checked against;
  :class:`~eventdocs.documents.Documents` stamps it);
* a read through version N shows the fields N declares, plus ``id``, ``_rev``
  and ``_updated`` (:func:`visible`); a field N does not declare stays in the
  document, unseen through N;
* a write through N checks what it sets against N
  (:meth:`~eventdocs.resources.ResourceSpec.validate_change`, which
  :class:`~eventdocs.documents.Documents` calls) and keeps the
  fields N does not declare: a PATCH through v1 of a document created through
  v2 never fails on a v2 field the client did not send, and a field v2 removed
  is kept when v2 patches a v1 document.

A create through N is a whole document of N, checked as such.
"""

from __future__ import annotations

import contextlib
from typing import Any

from eventdocs.resources import ResourceSpec

__all__ = ["visible"]

_ALWAYS = frozenset({"id", "_rev", "_updated"})


def visible(spec: ResourceSpec, rendered: dict[str, Any]) -> dict[str, Any]:
    """A rendered document as version ``spec`` shows it.

    Only the fields it declares (and ``id``, ``_rev``, ``_updated``); a
    client-supplied Integer id is a JSON number again.
    """
    out = {k: v for k, v in rendered.items() if k in _ALWAYS or k in spec.fields}
    id_field = spec.fields.get("id")
    if id_field is not None and id_field.kind == "integer" and isinstance(out.get("id"), str):
        with contextlib.suppress(ValueError):  # else written before it was an Integer
            out["id"] = int(out["id"])
    return out
