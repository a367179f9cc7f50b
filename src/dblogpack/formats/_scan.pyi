# The engine's compiled scan loops (_scan.c); each has a Python reference beside its caller.
from dblogpack.formats.mongo_slow import CommandOf, NewGroup
from dblogpack.formats.mongo_slow_lines import Columns, DurationOf, Judge, Shapes
from dblogpack.model import DetailGroup

def slow_lines(
    buf: bytes,
    lo: int,
    hi: int,
    least: float,
    keyed: bool,
    shapes: Shapes,
    judge: Judge,
    duration_of: DurationOf,
) -> Columns: ...
def every_line_starts_with(buf: bytes, marker: bytes, lo: int, stop: int) -> bool: ...
def group_lines(
    chosen: range | list[int],
    keys: list[bytes | None],
    durations: list[float],
    learnt: dict[bytes, bytes | None],
    unseen: bytes,
    met_once: bytes,
    command_of: CommandOf,
    new_group: NewGroup,
) -> list[DetailGroup]: ...
def heads_and_tags(buf: bytes, table: bytes, lo: int, hi: int) -> tuple[int, list[int]]: ...
