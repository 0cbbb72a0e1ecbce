"""MCAP files read record by record, for what rosbags' reader refuses: a file cut short (a
recorder killed before it wrote its summary) is read as far as it goes, and damaged chunks are
found and counted. Also the chunk CRCs rosbags' writer leaves at 0.

Only what a rosbag2 needs: Schema (0x03), Channel (0x04), Message (0x05) and Chunk (0x06,
uncompressed, zstd or lz4) records; every other record is skipped by its length. Hand-written:
the ``mcap`` package's stream reader would walk the records too, but it is not a dependency here
(rosbags reads MCAP itself) and would bring its own zstd binding for this one path.

    with open(path, "rb") as f:
        scanner = McapScanner(f)          # McapError: not an MCAP file
        channels = scanner.channels_ahead()
        for topic, msgtype, log_time_ns, raw in scanner.messages({"/camera/color/image_raw"}):
            ...
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

MAGIC = b"\x89MCAP0\r\n"


class McapError(ValueError):
    """An MCAP file whose records cannot be read (to their end): not MCAP, truncated, corrupt."""


class McapScanner:
    """Reads an MCAP file's records in file order, without its summary or footer.

    Only what a rosbag2 needs: Schema (0x03), Channel (0x04), Message (0x05) and Chunk (0x06,
    uncompressed, zstd or lz4) records; every other record is skipped by its length.
    """

    def __init__(self, file) -> None:
        self.file = file
        if file.read(8) != MAGIC:
            raise McapError("not an MCAP file (bad magic)")
        self.start = file.tell()
        self.channels: dict[int, tuple[str, str]] = {}  # channel id -> (topic, message type)
        self._schemas: dict[int, str] = {}
        self._ended_cleanly = False  # a footer record was read

    def rewind(self) -> None:
        self.file.seek(self.start)

    def channels_ahead(self, max_records: int = 10_000) -> dict[int, tuple[str, str]]:
        """Channels declared in the file, scanning (at most ``max_records``) until damage."""
        self.rewind()
        try:
            for _, _ in zip(range(max_records), self._records(self.file, top=True)):
                pass
        except McapError:
            pass  # what was found before the damage is what there is
        return dict(self.channels)

    def messages(self, wanted: set[str]) -> Iterator[tuple[str, str, int, bytes]]:
        """(topic, message type, log time ns, raw) of the wanted topics, in file order;
        McapError at the first damaged or missing byte, or at the end of a file without its
        footer."""
        self._ended_cleanly = False
        for channel_id, log_time, raw in self._records(self.file, top=True):
            topic, msgtype = self.channels.get(channel_id, (None, None))
            if topic in wanted:
                yield topic, msgtype, log_time, raw
        if not self._ended_cleanly:
            raise McapError(
                "the MCAP file ends without its footer (truncated: the recording was not closed)"
            )

    def _records(self, stream, top: bool):
        """Yields (channel id, log time, data) of message records; records schemas and channels.
        ``top``: the file itself (where a footer ends it), else the inside of a chunk."""
        while True:
            opcode = stream.read(1)
            if not opcode:
                return
            header = stream.read(8)
            if len(header) < 8:
                raise McapError("the file ends inside a record header (truncated)")
            (length,) = struct.unpack("<Q", header)
            body = stream.read(length)
            if len(body) < length:
                raise McapError(f"the file ends inside a record of {length} bytes (truncated)")
            op = opcode[0]
            if op == 0x03:
                (schema_id,) = struct.unpack_from("<H", body)
                name, _ = _string(body, 2)
                self._schemas[schema_id] = name
            elif op == 0x04:
                channel_id, schema_id = struct.unpack_from("<HH", body)
                topic, _ = _string(body, 4)
                self.channels[channel_id] = (topic, self._schemas.get(schema_id, ""))
            elif op == 0x05:
                channel_id, _, log_time, _ = struct.unpack_from("<HIQQ", body)
                yield channel_id, log_time, body[22:]
            elif op == 0x06 and top:
                yield from self._records(BytesIO(chunk_data(body)), top=False)
            elif op == 0x02 and top:  # footer: the file is complete
                self._ended_cleanly = True
                return


def _string(body: bytes, offset: int) -> tuple[str, int]:
    (size,) = struct.unpack_from("<I", body, offset)
    return body[offset + 4 : offset + 4 + size].decode(), offset + 4 + size


def chunk_records(file) -> Iterator[tuple[int, bytes]]:
    """(file offset, body) of every top-level Chunk record of an open MCAP file, up to its footer;
    McapError where the framing itself is broken."""
    file.seek(0)
    if file.read(8) != MAGIC:
        raise McapError("not an MCAP file (bad magic)")
    while True:
        offset = file.tell()
        head = file.read(9)
        if len(head) < 9 or head[0] == 0x02:  # end of file, or the footer
            return
        (length,) = struct.unpack_from("<Q", head, 1)
        if head[0] != 0x06:
            file.seek(length, os.SEEK_CUR)
            continue
        body = file.read(length)
        if len(body) < length:
            raise McapError(f"the file ends inside a chunk of {length} bytes (truncated)")
        yield offset, body


# rosbags' MCAP writer leaves every chunk's CRC at 0 (no option for it), so corrupt bytes would
# pass unseen; rosbags' reader checks the CRC where one is set, as other MCAP readers do.
def fill_chunk_crcs(path: str | os.PathLike) -> int:
    """Writes the CRC32 of each chunk's uncompressed records into its Chunk record (in place).

    Returns the number of chunks. Raises McapError for a file that is not a complete MCAP file.
    """
    with open(path, "r+b") as file:
        crcs = [(offset, zlib.crc32(chunk_parts(body)[2])) for offset, body in chunk_records(file)]
        for offset, crc in crcs:
            file.seek(offset + 9 + 24)  # opcode, length; start time, end time, uncompressed size
            file.write(struct.pack("<I", crc))
    return len(crcs)


def damaged_chunks(path: str | os.PathLike) -> tuple[int, int]:
    """(chunks failing their CRC or size check, chunks) of the bag folder or MCAP file ``path``;
    chunks without a CRC (0) count as sound when they decompress to their size."""
    files = sorted(Path(path).glob("*.mcap")) if Path(path).is_dir() else [Path(path)]
    damaged = total = 0
    for mcap in files:
        with open(mcap, "rb") as file:
            try:
                for _, body in chunk_records(file):
                    total += 1
                    try:
                        chunk_data(body)
                    except Exception:  # any failure to decode (zstd, lz4, struct) is damage
                        damaged += 1
            except McapError:
                damaged += 1  # the framing after the last sound chunk is broken
    return damaged, total


def chunk_parts(body: bytes) -> tuple[int, int, bytes]:
    """(uncompressed size, stored CRC, uncompressed records) of a Chunk record's body,
    unchecked."""
    _, _, size, crc = struct.unpack_from("<QQQI", body)
    compression, offset = _string(body, 28)
    (compressed_size,) = struct.unpack_from("<Q", body, offset)
    data = body[offset + 8 : offset + 8 + compressed_size]
    if compression == "zstd":
        try:
            # Python 3.14's; vermin cannot see the fallback below, hence novm
            from compression import zstd  # novm
        except ImportError:
            from backports import zstd
        data = zstd.decompress(data)
    elif compression == "lz4":
        import lz4.frame

        data = lz4.frame.decompress(data)
    elif compression:
        raise McapError(f"chunk compression {compression!r} is not supported")
    return size, crc, data


def chunk_data(body: bytes) -> bytes:
    """The records inside a Chunk record's body, decompressed and checked against its CRC."""
    size, crc, data = chunk_parts(body)
    if len(data) != size or (crc and zlib.crc32(data) != crc):
        raise McapError("a chunk fails its size or CRC check (corrupt)")
    return data
