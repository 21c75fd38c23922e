"""A bare blocking Kafka connection for tests that must send exactly the
bytes they choose, hostile ones included."""

import socket
import struct

from kafscale.protocol.messages import decode_response_header, encode_request, response_codec


class Connection:
    def __init__(self, bootstrap, timeout=10):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.correlation_id = 0

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, api_key, version, body, client_id="tests"):
        self.correlation_id += 1
        self.sock.sendall(encode_request(api_key, version, self.correlation_id, client_id, body))
        return self.correlation_id

    def read_frame(self):
        """The next response frame, or None once the broker closed the connection."""
        head = self._read(4)
        if head is None:
            return None
        (size,) = struct.unpack(">i", head)
        return self._read(size)

    def receive(self, api_key, version):
        """(correlation id, decoded body) of the next response."""
        frame = self.read_frame()
        if frame is None:
            raise ConnectionError("closed by the broker")
        correlation_id, offset = decode_response_header(frame, api_key, version)
        body, _ = response_codec(api_key, version).decode(frame, offset)
        return correlation_id, body

    def request(self, api_key, version, body):
        sent = self.send(api_key, version, body)
        correlation_id, response = self.receive(api_key, version)
        assert correlation_id == sent, (correlation_id, sent)
        return response

    def closed_by_peer(self):
        """True when the broker closed the connection without answering."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def _read(self, size):
        chunks = []
        while size:
            try:
                chunk = self.sock.recv(min(size, 1 << 20))
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)
