#!/usr/bin/env python3
"""A TCP proxy that adds network latency, for benchmarks and tests on a
machine without netem (tc qdisc) in its kernel.

    bench/latency-proxy.py --target 127.0.0.1:8080 --delay-ms 5 [--rate-mbit 1000] [--listen-port 0]

Every chunk of bytes read from one side is written to the other side
DELAY ms after it was read, in both directions, so a request/response
round trip costs 2 * DELAY more (RTT = 2 * DELAY). Order is kept, and
chunks in flight are pipelined (a chunk read at time t is written at
t + DELAY, not after the previous chunk's delay), as on a long fat link
whose TCP window is never the limit. Connection setup is not delayed by
itself; the first bytes each way are.

With --rate-mbit R, each direction is also a link of R Mbit/s shared by
every connection, as a runner's uplink is: a chunk leaves once the link
has sent what was read before it, and takes its size / R to send, then
DELAY to arrive. Without it the bandwidth is not limited.

It listens on 127.0.0.1 only, prints the port it listens on (one line on
stdout) once it accepts connections, and on SIGTERM or SIGINT prints its
counters to stderr, writes them to --stats FILE (JSON) if given, and exits.
SIGUSR1 writes the counters to --stats FILE without stopping.

From Python (same process, an asyncio loop):

    proxy = LatencyProxy(("127.0.0.1", 8080), delay_ms=5)
    port = await proxy.start()      # 0 = any free port
    ...
    await proxy.stop(); proxy.stats  # connections, bytes_up, bytes_down

bytes_up is what clients sent to the target, bytes_down what they got back.
"""

import argparse
import asyncio
import json
import signal
import sys

CHUNK = 256 * 1024
# Bytes read but not yet written, per direction of one connection, before
# reading pauses (memory bound; at loopback speed and 50 ms this is not hit
# by a single stream of ~1 GB/s).
MAX_QUEUED = 128 * 1024 * 1024


class LatencyProxy:
    def __init__(self, target, delay_ms, listen_host="127.0.0.1", rate_mbit=0):
        self.target = target
        self.delay = delay_ms / 1000.0
        # Bytes a second each way (0: not limited), and when each link is
        # free again (loop time).
        self.rate = rate_mbit * 1e6 / 8
        self._link_free = {"bytes_up": 0.0, "bytes_down": 0.0}
        self.listen_host = listen_host
        self.stats = {"connections": 0, "open": 0, "bytes_up": 0, "bytes_down": 0}
        self._server = None
        self._tasks = set()

    async def start(self, port=0):
        self._server = await asyncio.start_server(self._accept, self.listen_host, port)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self):
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, client_reader, client_writer):
        task = asyncio.current_task()
        self._tasks.add(task)
        self.stats["connections"] += 1
        self.stats["open"] += 1
        upstream_writer = None
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
            await asyncio.gather(
                self._pipe(client_reader, upstream_writer, "bytes_up"),
                self._pipe(upstream_reader, client_writer, "bytes_down"),
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass   # stop(): the connection ends with the proxy
        finally:
            self.stats["open"] -= 1
            for writer in (client_writer, upstream_writer):
                if writer is not None:
                    writer.close()
            self._tasks.discard(task)

    async def _pipe(self, reader, writer, counter):
        """Copies reader to writer, each chunk DELAY after it was read."""
        loop = asyncio.get_running_loop()
        queue = asyncio.Queue()
        room = asyncio.Event()
        room.set()
        queued = 0

        async def deliver():
            nonlocal queued
            try:
                while True:
                    due, data = await queue.get()
                    wait = due - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    if data is None:
                        if writer.can_write_eof():
                            writer.write_eof()
                        return
                    writer.write(data)
                    await writer.drain()
                    queued -= len(data)
                    if queued < MAX_QUEUED:
                        room.set()
            except (OSError, RuntimeError):
                writer.close()   # the far side is gone: drop the rest

        deliverer = asyncio.ensure_future(deliver())
        try:
            while not deliverer.done():
                try:
                    data = await reader.read(CHUNK)
                except OSError:
                    data = b""
                sent = loop.time()
                if self.rate and data:
                    sent = max(sent, self._link_free[counter]) + len(data) / self.rate
                    self._link_free[counter] = sent
                queue.put_nowait((sent + self.delay, data or None))
                if not data:
                    break
                self.stats[counter] += len(data)
                queued += len(data)
                if queued >= MAX_QUEUED:
                    room.clear()
                    await room.wait()
            await deliverer
        finally:
            deliverer.cancel()


def parse_target(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"--target HOST:PORT, not {text!r}")
    return host.strip("[]"), int(port)


async def serve(args):
    proxy = LatencyProxy(args.target, args.delay_ms, rate_mbit=args.rate_mbit)
    port = await proxy.start(args.listen_port)
    print(port, flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()

    def write_stats():
        if args.stats:
            with open(args.stats, "w") as out:
                json.dump(proxy.stats, out)
                out.write("\n")

    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    loop.add_signal_handler(signal.SIGUSR1, write_stats)
    await stopping.wait()
    await proxy.stop()
    write_stats()
    s = proxy.stats
    print(f"latency-proxy: {s['connections']} connections, {s['bytes_up']} bytes up, "
          f"{s['bytes_down']} bytes down", file=sys.stderr)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=parse_target, required=True, help="HOST:PORT to forward to")
    parser.add_argument("--delay-ms", type=float, required=True, help="one-way delay D (RTT = 2 D)")
    parser.add_argument("--rate-mbit", type=float, default=0,
                        help="bandwidth each way in Mbit/s, shared by all connections (default: not limited)")
    parser.add_argument("--listen-port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    parser.add_argument("--stats", help="write the counters here as JSON (on exit and on SIGUSR1)")
    args = parser.parse_args(argv)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
