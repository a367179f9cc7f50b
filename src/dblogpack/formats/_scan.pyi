# The engine's compiled scan loops (_scan.c); each shares the signature of the Python reference
# kept beside its caller.
from dblogpack.formats.mongo_slow import GroupLines
from dblogpack.formats.mongo_slow_lines import FindSlowLines

slow_lines: FindSlowLines
group_lines: GroupLines

def every_line_starts_with(buf: bytes, marker: bytes, lo: int, stop: int) -> bool: ...
def heads_and_tags(buf: bytes, table: bytes, lo: int, hi: int) -> tuple[int, list[int]]: ...
def follow_up_tags(buf: bytes, table: bytes, lo: int, hi: int) -> list[int]: ...
