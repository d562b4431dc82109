#!/usr/bin/env python3
"""A small OpenAI-compatible chat server for Grace's tests. Standard library only.

    python3 model_server.py [--port 0] [--text TEXT] [--mode ok|hang|fail|stall]
                            [--chunks 4] [--delay-ms 20]

POST /v1/chat/completions answers with TEXT (also $MODEL_SERVER_TEXT):
  - without "stream": one JSON answer, {"choices":[{"message":{"content":TEXT}}]};
  - with "stream": true, Server-Sent Events in chunked encoding, TEXT split
    into --chunks pieces: data: {"choices":[{"delta":{"content":"..."}}]} ...
    then data: [DONE].
Modes: ok (the above); hang (read the request, never answer); fail (HTTP 500
with an OpenAI-shaped error); stall (stream the first piece, then hang).

For the test driving it:
  POST /_control {"mode"?, "text"?, "chunks"?, "delay_ms"?, "think_ms"?,
    "send_done"?, "send_finish"?, "framing"?, "script"?} changes the behaviour:
    think_ms waits that long before answering at all (a slow model thinking);
    send_done false leaves out "data: [DONE]", send_finish false every
    finish_reason (both false: a stream cut off that still ends cleanly);
    framing "close" sends a stream without chunked encoding, its end being
    the connection's close, "broken" a chunked stream whose connection
    closes before its last chunk (default "chunked"); script, a list of
    texts, answers the next completions with them in turn (then TEXT again);
  GET /_requests lists every completion request seen: {"body", "authorization"},
    and "max_active", the most answered at once;
  POST /_reset forgets them.

It prints "listening on PORT" on stdout once it accepts connections (with
--port 0 the system picks a free port), and stops on SIGTERM or SIGINT.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STOP = threading.Event()


class State:
    def __init__(self, text, mode, chunks, delay_ms):
        self.lock = threading.Lock()
        self.text = text
        self.mode = mode
        self.chunks = chunks
        self.delay_ms = delay_ms
        self.think_ms = 0
        self.send_done = True
        self.send_finish = True
        self.framing = "chunked"
        self.script = []  # texts for the next completions, in turn
        self.requests = []
        self.active = 0  # completion requests being answered now
        self.max_active = 0


def split_text(text, n):
    """TEXT in n pieces of about the same length (never splitting a character)."""
    if not text:
        return [""]
    n = max(1, min(n, len(text)))
    size = -(-len(text) // n)
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "grace-test-model/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    @property
    def state(self):
        return self.server.state

    def send_json(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if self.path == "/_requests":
            with self.state.lock:
                reqs = list(self.state.requests)
            with self.state.lock:
                peak = self.state.max_active
            self.send_json(200, {"requests": reqs, "max_active": peak})
        elif self.path in ("/health", "/v1/models"):
            self.send_json(200, {"object": "list", "data": [{"id": "test-model"}]})
        else:
            self.send_json(404, {"error": {"message": "no route"}})

    def do_POST(self):
        raw = self.read_body()
        if self.path == "/_control":
            cfg = json.loads(raw or b"{}")
            with self.state.lock:
                for k in ("mode", "text", "chunks", "delay_ms", "think_ms", "send_done",
                          "send_finish", "framing", "script"):
                    if k in cfg:
                        setattr(self.state, k, cfg[k])
            self.send_json(200, {"ok": True})
            return
        if self.path == "/_reset":
            with self.state.lock:
                self.state.requests.clear()
                self.state.max_active = self.state.active
            self.send_json(200, {"ok": True})
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self.send_json(404, {"error": {"message": "no route %s" % self.path}})
            return
        with self.state.lock:
            self.state.active += 1
            self.state.max_active = max(self.state.max_active, self.state.active)
        try:
            self.completion(raw)
        finally:
            with self.state.lock:
                self.state.active -= 1

    def completion(self, raw):
        try:
            body = json.loads(raw)
        except ValueError:
            self.send_json(400, {"error": {"message": "the body is not JSON"}})
            return
        with self.state.lock:
            self.state.requests.append({"body": body,
                                        "authorization": self.headers.get("Authorization")})
            mode, text = self.state.mode, self.state.text
            if self.state.script and mode == "ok":
                text = self.state.script.pop(0)
            chunks, delay = self.state.chunks, self.state.delay_ms / 1000.0
            think = self.state.think_ms / 1000.0
            send_done, send_finish = self.state.send_done, self.state.send_finish
            chunked = self.state.framing != "close"
            broken = self.state.framing == "broken"
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            self.send_json(400, {"error": {"message": "messages is required"}})
            return
        if think and STOP.wait(think):
            self.close_connection = True
            return
        if mode == "hang":
            STOP.wait(600)
            self.close_connection = True
            return
        if mode == "fail":
            self.send_json(500, {"error": {"message": "the test model is failing on purpose",
                                           "type": "server_error"}})
            return
        model = body.get("model") or "test-model"
        if not body.get("stream"):
            self.send_json(200, {
                "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
            })
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:  # the body ends when the connection closes
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()

        def chunk(data):
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                self.wfile.write(data)
            self.wfile.flush()

        def event(obj):
            chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")

        pieces = split_text(text, chunks)
        try:
            event({"id": "chatcmpl-test", "object": "chat.completion.chunk", "model": model,
                   "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
            for i, piece in enumerate(pieces):
                event({"id": "chatcmpl-test", "object": "chat.completion.chunk", "model": model,
                       "choices": [{"index": 0, "delta": {"content": piece},
                                    "finish_reason": None}]})
                if mode == "stall":
                    STOP.wait(600)
                    self.close_connection = True
                    return
                time.sleep(delay)
            if send_finish:
                event({"id": "chatcmpl-test", "object": "chat.completion.chunk", "model": model,
                       "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            if send_done:
                chunk(b"data: [DONE]\n\n")
            if broken:  # no last chunk: the body breaks off
                self.close_connection = True
            elif chunked:
                chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--text", default=os.environ.get(
        "MODEL_SERVER_TEXT", "This is the test model speaking, in several pieces."))
    ap.add_argument("--mode", default="ok", choices=("ok", "hang", "fail", "stall"))
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--delay-ms", type=int, default=20)
    args = ap.parse_args()
    if 8000 <= args.port <= 8149:
        ap.error("ports 8000-8149 belong to Grace")
    srv = Server(("127.0.0.1", args.port), Handler)
    srv.state = State(args.text, args.mode, args.chunks, args.delay_ms)

    def stop(signum, frame):
        STOP.set()
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("listening on %d" % srv.server_address[1], flush=True)
    srv.serve_forever(poll_interval=0.1)
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
