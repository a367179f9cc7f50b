"""`typing.NamedTuple`'s class syntax at the run-time cost of `collections.namedtuple`.

The engine's value types are created at every `dblogpack pack` start, a whole process that must
take < 50 ms: importing `typing` costs ~4 ms of it and `dataclasses` ~11 ms more, while a
`collections.namedtuple` class costs tens of microseconds. Type checkers see `typing.NamedTuple`
itself; at run time a class body of annotated fields, defaults, methods and properties becomes the
same `collections.namedtuple` class `typing.NamedTuple` would build from it.
"""

from __future__ import annotations

from collections import namedtuple

# Not typing.TYPE_CHECKING: importing typing is what this module avoids (type checkers treat any
# constant of this name alike).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
else:
    # What the class statement puts in a namespace besides the fields and their members.
    _OWN = frozenset({"__module__", "__qualname__", "__annotations__", "__slots__"})

    class _RecordMeta(type):
        """Builds `class X(NamedTuple): field: type = default ...` as collections.namedtuple."""

        def __new__(cls, name, bases, namespace):
            fields = tuple(namespace.get("__annotations__", ()))
            defaults = [namespace[field] for field in fields if field in namespace]
            # Fields with defaults come last, as for typing.NamedTuple (namedtuple checks it).
            record = namedtuple(name, fields, defaults=defaults, module=namespace["__module__"])
            record.__qualname__ = namespace["__qualname__"]
            for key, value in namespace.items():
                if key not in fields and key not in _OWN:
                    setattr(record, key, value)
            return record

    NamedTuple = type.__new__(_RecordMeta, "NamedTuple", (), {})
