# One TCP transfer to measure a link (bench/volunteers.sh checks each run's
# bandwidth limit with it). Usage, with /usr/bin/python3:
#   net_probe.py serve HOST        prints the port, then "BYTES SECONDS" received
#   net_probe.py send HOST PORT BYTES
import socket
import sys
import time


def serve(host: str) -> None:
    s = socket.socket()
    s.bind((host, 0))
    s.listen(1)
    print(s.getsockname()[1], flush=True)
    c, _ = s.accept()
    n, start = 0, None
    while True:
        b = c.recv(1 << 16)
        if not b:
            break
        if start is None:
            start = time.monotonic()
        n += len(b)
    print(n, time.monotonic() - (start or time.monotonic()), flush=True)


def send(host: str, port: int, total: int) -> None:
    c = socket.create_connection((host, port), timeout=60)
    chunk, sent = b"\0" * (1 << 16), 0
    while sent < total:
        c.sendall(chunk[: min(len(chunk), total - sent)])
        sent += min(len(chunk), total - sent)
    c.close()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
