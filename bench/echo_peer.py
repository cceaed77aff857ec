"""The other process of the invoke-overhead baseline: answers each frame with a frame of its own.

    python bench/echo_peer.py FD

FD is a connected stream socket (one end of a socketpair). A frame is a 4-byte big-endian
length and a msgspec msgpack message, as between the nimbus controller and its workers. The
peer reads with blocking calls, as a nimbus worker does, and exits when the socket closes.
"""

from __future__ import annotations

import socket
import struct
import sys

import msgspec

HEADER = struct.Struct(">I")
READ_SIZE = 1 << 16


class Ping(msgspec.Struct, array_like=True):
    id: int
    payload: bytes


class Pong(msgspec.Struct, array_like=True):
    id: int
    value: bytes


_encoder = msgspec.msgpack.Encoder()


def pack(message: Ping | Pong) -> bytes:
    body = _encoder.encode(message)
    return HEADER.pack(len(body)) + body


def take_frames(buffer: bytearray) -> list[bytes]:
    """Remove the complete frames from the front of `buffer` and return their bodies."""
    frames = []
    offset = 0
    while len(buffer) - offset >= HEADER.size:
        (size,) = HEADER.unpack_from(buffer, offset)
        end = offset + HEADER.size + size
        if len(buffer) < end:
            break
        frames.append(bytes(buffer[offset + HEADER.size : end]))
        offset = end
    del buffer[:offset]
    return frames


def serve(sock: socket.socket) -> None:
    decoder = msgspec.msgpack.Decoder(Ping)
    buffer = bytearray()
    while chunk := sock.recv(READ_SIZE):
        buffer += chunk
        for frame in take_frames(buffer):
            ping = decoder.decode(frame)
            sock.sendall(pack(Pong(ping.id, ping.payload)))


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
