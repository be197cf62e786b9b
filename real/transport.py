"""Byte transports to the arm: USB serial (pyserial) and HTTP (``GET /js?json=``), behind one interface.

The driver's owner thread is the only caller. ``send`` writes one command line; ``receive`` returns the
complete lines that arrived within a timeout (for HTTP: the bodies of the replies). Any failure of the
link raises ``TransportError`` so the driver can reconnect.
"""

from __future__ import annotations

import collections
import time
import urllib.error
import urllib.parse
import urllib.request


class TransportError(OSError):
    """The link failed (cable pulled, port gone, host unreachable)."""


class SerialTransport:
    """115200 8N1, newline-framed JSON. RTS and DTR are held low from the moment the port opens
    (raising either resets the ESP32 on the arm's CP2102 port)."""

    streams = True

    def __init__(self, port: str, baudrate: int = 115200):
        self.port = port
        self.baudrate = baudrate
        self._serial = None
        self._buffer = bytearray()

    def __str__(self) -> str:
        return f"serial {self.port}"

    def open(self) -> None:
        import serial

        ser = serial.Serial()
        ser.port, ser.baudrate, ser.timeout, ser.write_timeout = self.port, self.baudrate, 0, 0.5
        ser.bytesize, ser.parity, ser.stopbits = serial.EIGHTBITS, serial.PARITY_NONE, serial.STOPBITS_ONE
        ser.rts, ser.dtr = False, False  # applied on open, before the lines can toggle
        try:
            ser.open()
        except (serial.SerialException, OSError) as err:
            raise TransportError(f"cannot open {self.port}: {err}") from None
        self._serial = ser
        self._buffer.clear()

    def close(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            except Exception:  # noqa: BLE001 - closing a dead port may raise anything; it is gone either way
                pass
            self._serial = None

    def flush_input(self) -> None:
        if self._serial is not None:
            self._serial.reset_input_buffer()
        self._buffer.clear()

    def send(self, line: bytes) -> None:
        import serial

        if self._serial is None:
            raise TransportError(f"{self.port} is not open")
        try:
            self._serial.write(line)
        except (serial.SerialException, OSError) as err:
            raise TransportError(f"write to {self.port} failed: {err}") from None

    def receive(self, timeout: float) -> list[bytes]:
        import serial

        if self._serial is None:
            raise TransportError(f"{self.port} is not open")
        try:
            self._serial.timeout = max(timeout, 0.0)
            chunk = self._serial.read(max(1, self._serial.in_waiting))
            if chunk and self._serial.in_waiting:
                chunk += self._serial.read(self._serial.in_waiting)
        except (serial.SerialException, OSError, TypeError) as err:  # pyserial raises TypeError on a vanished fd
            raise TransportError(f"read from {self.port} failed: {err}") from None
        self._buffer.extend(chunk)
        lines = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                break
            lines.append(bytes(self._buffer[:end]))
            del self._buffer[: end + 1]
        if len(self._buffer) > 4096:  # a line without an end: garbage, not a frame
            lines.append(bytes(self._buffer))
            self._buffer.clear()
        return lines


class HttpTransport:
    """The arm's web API: one GET per command; a query's reply body is the feedback line."""

    streams = False

    def __init__(self, host: str, timeout_s: float = 0.5):
        self.base = host if host.startswith("http") else f"http://{host}"
        self.timeout_s = timeout_s
        self._replies: collections.deque[bytes] = collections.deque()
        self._open = False

    def __str__(self) -> str:
        return f"http {self.base}"

    def open(self) -> None:
        self._open = True
        self._replies.clear()

    def close(self) -> None:
        self._open = False

    def flush_input(self) -> None:
        self._replies.clear()

    def send(self, line: bytes) -> None:
        url = f"{self.base}/js?json={urllib.parse.quote(line.decode().strip())}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as reply:
                body = reply.read()
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise TransportError(f"GET {self.base}/js failed: {err}") from None
        if body.strip():
            self._replies.append(body.strip())

    def receive(self, timeout: float) -> list[bytes]:
        if not self._replies:
            time.sleep(max(timeout, 0.0))
        lines = list(self._replies)
        self._replies.clear()
        return lines
