"""The blog example: mesh's Post resource and a posts-per-author view.

Serve it with ``eventdocs serve examples/blog.py``.
"""

from __future__ import annotations

from eventdocs.fields import Boolean, DateTime, Integer, Sequence, Text
from eventdocs.projections.views import Change, Rows, View
from eventdocs.resources import Resource


class Post(Resource):
    """A blog post."""

    name = "post"
    version = 1

    class schema:
        title = Text(
            required=True,
            nonnull=True,
            operators=["contains", "icontains", "prefix"],
            sortable=True,
            max_length=200,
        )
        author = Text(operators=["equal", "iequal", "in", "notin", "null"], sortable=True)
        body = Text(operators=["contains", "icontains"])
        blog = Integer(
            required=True, nonnull=True, operators=["equal", "in", "gt", "lt"], sortable=True
        )
        posted = DateTime(operators=["gt", "gte", "lt", "lte"], sortable=True)
        published = Boolean(default=False, operators=["equal"])
        tags = Sequence(Text(), max_length=20)


class PostsPerAuthor(View):
    """How many posts each author has now: ``{"author": ..., "posts": n}``."""

    name = "posts_per_author"
    sources = ("post",)
    # What /views/posts_per_author and `eventdocs view` filter and sort on.
    fields = {  # noqa: RUF012  (a declaration, never mutated)
        "author": Text(operators=["equal", "iequal", "in", "prefix"], sortable=True),
        "posts": Integer(operators=["equal", "gt", "gte", "lt", "lte"], sortable=True),
    }

    def keys(self, change: Change) -> list[str]:
        return [
            doc["author"]
            for doc in (change.before, change.after)
            if doc is not None and isinstance(doc.get("author"), str)
        ]

    def apply(self, rows: Rows, change: Change) -> None:
        for doc, delta in ((change.before, -1), (change.after, 1)):
            if doc is None or not isinstance(doc.get("author"), str):
                continue
            author = doc["author"]
            row = rows.get(author) or {"author": author, "posts": 0}
            count = row["posts"] + delta
            rows[author] = {"author": author, "posts": count} if count > 0 else None


views = [PostsPerAuthor()]
