"""Declarative views under random writes: rows equal the aggregates computed directly.

Random creates, updates (group changes included) and deletes run through the
document API on a memory store and a SQLite file; after them the view's rows
equal a direct computation over the master collection (written here without
the view's code: ``fsum``, ``Decimal``, ``min``/``max``), verify finds
nothing, and a rebuild from the log gives the same rows.
"""

from __future__ import annotations

import asyncio
import decimal
import math
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventdocs.errors import EventdocsError
from eventdocs.fields import Boolean, DateTime, Decimal, Float, Integer, Text
from eventdocs.projections.declared import declare_view, public_row
from eventdocs.projections.replay import verify
from eventdocs.projections.views import rebuild_view
from eventdocs.query import Query
from eventdocs.resources import Resource
from eventdocs.service import Service
from eventdocs.storage import open_store
from eventdocs.times import ManualClock


class Sale(Resource):
    name = "sale"
    version = 1

    class schema:
        shop = Text(operators=["equal"])
        kind = Integer()
        qty = Integer()
        weight = Float()
        price = Decimal()
        paid = Boolean()
        at = DateTime()


def sales_view() -> Any:
    return declare_view(
        name="sales",
        source="sale",
        group_by=["shop", "kind"],
        where={"paid": True},
        aggregates={
            "n": {"count": "*"},
            "with_qty": {"count": "qty"},
            "qty": {"sum": "qty"},
            "weight": {"sum": "weight"},
            "mean_weight": {"avg": "weight"},
            "revenue": {"sum": "price"},
            "mean_price": {"avg": "price"},
            "cheapest": {"min": "price"},
            "first": {"min": "at"},
            "last": {"max": "at"},
            "most": {"max": "qty"},
        },
    )


def expected_rows(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for d in docs:
        if d.get("paid") is True:
            groups.setdefault((d.get("shop"), d.get("kind")), []).append(d)
    out = []
    for (shop, kind), members in groups.items():

        def values(name: str, members: list[dict[str, Any]] = members) -> list[Any]:
            return [m[name] for m in members if m.get(name) is not None]

        qty, weight = values("qty"), values("weight")
        prices = [decimal.Decimal(p) for p in values("price")]
        with decimal.localcontext() as context:
            context.prec = 60
            revenue = sum(prices, decimal.Decimal(0))
        out.append(
            {
                "shop": shop,
                "kind": kind,
                "n": len(members),
                "with_qty": len(qty),
                "qty": sum(qty) if qty else None,
                "weight": math.fsum(weight) if weight else None,
                "mean_weight": _mean(weight) if weight else None,
                "revenue": _text(revenue) if prices else None,
                "mean_price": _text(revenue / len(prices)) if prices else None,
                "cheapest": _text(min(prices)) if prices else None,
                "first": min(values("at"), default=None),
                "last": max(values("at"), default=None),
                "most": max(qty, default=None),
            }
        )
    return sorted(out, key=lambda r: (str(r["shop"]), str(r["kind"])))


def _mean(values: list[float]) -> float:
    from fractions import Fraction

    return float(sum(map(Fraction, values), Fraction(0)) / len(values))


def _text(d: decimal.Decimal) -> str:
    d = d.normalize()
    return format(d, "f") if d else "0"


bodies = st.fixed_dictionaries(
    {},
    optional={
        "shop": st.sampled_from(["a", "b", None]),
        "kind": st.sampled_from([1, 2]),
        "qty": st.integers(-5, 50),
        "weight": st.sampled_from([0.1, 0.2, 0.3, 1e16, -1e16, 2.5]),
        "price": st.sampled_from(["0.10", "0.2", "19.99", "100", "-3.5"]),
        "paid": st.booleans(),
        "at": st.sampled_from(
            ["2024-01-01T00:00:00Z", "2024-06-01T00:00:00Z", "2023-03-03T00:00:00Z"]
        ),
    },
)
steps = st.lists(
    st.tuples(st.sampled_from(["create", "update", "delete"]), st.integers(0, 5), bodies),
    max_size=25,
)


async def run(store_url: str, plan: list[tuple[str, int, dict[str, Any]]]) -> None:
    clock = ManualClock()
    view = sales_view()
    service = Service(
        open_store(store_url, clock=clock),
        [Sale.spec()],
        views=[view],
        clock=clock,
        background=False,
    )
    async with service:
        docs = service.documents("sale")
        ids: list[str] = []
        for action, index, body in plan:
            clock.advance(1000)
            try:
                if action == "create" or not ids:
                    ids.append((await docs.create(body)).event.id)
                elif action == "update":
                    await docs.update(ids[index % len(ids)], body, merge=True)
                else:
                    await docs.delete(ids.pop(index % len(ids)))
            except EventdocsError:
                pass
        master = await docs.query(Query(limit=1000))
        expected = expected_rows([d.data or {} for d in master.items])
        stored = await service.store.read_view("sales")

        def actual(rows: dict[str, Any]) -> list[dict[str, Any]]:
            out = [public_row(r) for r in rows.values()]
            return sorted(out, key=lambda r: (str(r["shop"]), str(r["kind"])))

        assert actual(stored) == expected
        assert await verify(service.store, ["sale"], [view]) == []
        await rebuild_view(service.store, view)
        assert await service.store.read_view("sales") == stored


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_memory_rows_equal_the_aggregates_of_the_documents(
    plan: list[tuple[str, int, dict[str, Any]]],
) -> None:
    asyncio.run(run("memory:", plan))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_sqlite_rows_equal_the_aggregates_of_the_documents(
    plan: list[tuple[str, int, dict[str, Any]]],
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(run(f"sqlite:///{Path(folder) / 'views.db'}", plan))
