# The engine's compiled scan loops (_scan.c); each shares the signature of the Python reference
# kept beside its caller.
from dblogpack.formats.mongo_slow import GroupLines
from dblogpack.formats.mongo_slow_lines import FindSlowLines
from dblogpack.formats.pg_count import PairFollowUps

slow_lines: FindSlowLines
pair_follow_ups: PairFollowUps
group_lines: GroupLines

def every_line_starts_with(buf: bytes, marker: bytes, lo: int, stop: int) -> bool: ...
def heads_and_tags(buf: bytes, table: bytes, lo: int, hi: int) -> tuple[int, list[int]]: ...
def follow_up_tags(buf: bytes, table: bytes, lo: int, hi: int) -> list[int]: ...
def read_head(buf: bytes, at: int, program: bytes) -> tuple[int, int, int, int, int] | None: ...
