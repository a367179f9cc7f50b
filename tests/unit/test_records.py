"""records.NamedTuple builds what typing.NamedTuple builds (the engine's value types use it)."""

from __future__ import annotations

import pickle
from typing import NamedTuple as TypingNamedTuple

import pytest

from dblogpack.model import FormatConfig, LogFile, SourceConfig, SourceType, TimeWindow
from dblogpack.records import NamedTuple


class Probe(NamedTuple):
    """A probe."""

    offset: int
    stamp: float | None = None
    name: str = "p"

    @property
    def twice(self) -> int:
        return 2 * self.offset

    def later(self, seconds: float) -> float:
        return (self.stamp or 0.0) + seconds


class TypingProbe(TypingNamedTuple):
    """A probe."""

    offset: int
    stamp: float | None = None
    name: str = "p"


def test_fields_defaults_and_members_are_typing_namedtuple_s() -> None:
    probe = Probe(3, stamp=1.5)

    assert Probe._fields == TypingProbe._fields
    assert Probe._field_defaults == TypingProbe._field_defaults
    assert tuple(probe) == tuple(TypingProbe(3, stamp=1.5)) == (3, 1.5, "p")
    assert repr(probe) == "Probe(offset=3, stamp=1.5, name='p')"
    assert (probe.twice, probe.later(1.0), Probe.__doc__) == (6, 2.5, "A probe.")
    assert probe._replace(name="q") == Probe(3, 1.5, "q")
    assert hash(probe) == hash((3, 1.5, "p"))
    assert pickle.loads(pickle.dumps(probe)) == probe
    assert (Probe.__module__, Probe.__qualname__) == (__name__, "Probe")
    with pytest.raises(AttributeError):
        probe.offset = 4  # type: ignore[misc]


def test_model_values_keep_their_behaviour() -> None:
    window = TimeWindow(1.0, 2.0)
    assert pickle.loads(pickle.dumps(window)) == window and window.contains(1.5)
    with pytest.raises(ValueError, match="not before end"):
        TimeWindow(2.0, 1.0)
    assert LogFile("a.log.gz", 10).compressed
    config = FormatConfig("auto")
    assert config._replace(name="pg-stderr") == FormatConfig("pg-stderr")
    assert {config: 1}[FormatConfig("auto")] == 1
    secret = SourceConfig(SourceType.DIR, dsn="password=hunter2")
    assert "hunter2" not in repr(secret)
