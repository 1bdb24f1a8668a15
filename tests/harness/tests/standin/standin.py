"""Stand-in for the `hyphae` binary in the harness self-tests.

Same CLI shape (`--state-dir DIR VERB ...`), no mesh: `node` serves
`/status` and `/metrics` over HTTP/1.1 on DIR/run/node.sock and binds
nothing else. Knobs come from the environment:
  STANDIN_TAG          echoed in /status and by `echo`
  STANDIN_READY_DELAY  seconds before /status says ready
  STANDIN_EXIT         exit with status 7 right after starting
"""
import json
import os
import socketserver
import sys
import time
from http.server import BaseHTTPRequestHandler


def main():
    args = sys.argv[1:]
    if len(args) < 3 or args[0] != "--state-dir":
        print("usage: standin --state-dir DIR VERB [ARGS...]", file=sys.stderr)
        return 2
    state, verb, rest = args[1], args[2], args[3:]
    if verb == "init":
        with open(os.path.join(state, "mesh-id"), "w") as f:
            f.write("mesh-0123\n")
        print("mesh-0123")
        return 0
    if verb == "echo":
        print(" ".join(rest))
        print("tag=" + os.environ.get("STANDIN_TAG", ""))
        print("cwd=" + os.getcwd())
        return 0
    if verb == "sleep":
        print("sleeping", flush=True)
        time.sleep(float(rest[0]))
        return 0
    if verb == "fail":
        print("standin: failing as asked", file=sys.stderr)
        return 3
    if verb == "node":
        return serve(state, rest)
    print("standin: unknown verb %r" % verb, file=sys.stderr)
    return 2


def serve(state, rest):
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    starts_path = os.path.join(state, "starts")
    starts = 1
    if os.path.exists(starts_path):
        with open(starts_path) as f:
            starts = int(f.read()) + 1
    with open(starts_path, "w") as f:
        f.write(str(starts))
    print("standin: node start %d args=%s" % (starts, rest))
    if os.environ.get("STANDIN_EXIT") == "1":
        print("standin: exiting as asked", file=sys.stderr)
        return 7

    config = ""
    config_path = os.path.join(state, "hyphae.toml")
    if os.path.exists(config_path):
        with open(config_path) as f:
            config = f.read()
    run = os.path.join(state, "run")
    os.makedirs(run, exist_ok=True)
    sock = os.path.join(run, "node.sock")
    if os.path.exists(sock):
        os.unlink(sock)
    delay = float(os.environ.get("STANDIN_READY_DELAY", "0"))
    t0 = time.monotonic()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            if self.path == "/status":
                # Chunked, like a streaming hyper body, to exercise the client.
                body = json.dumps({
                    "ready": time.monotonic() - t0 >= delay,
                    "starts": starts,
                    "args": rest,
                    "tag": os.environ.get("STANDIN_TAG", ""),
                    "config": config,
                    "pid": os.getpid(),
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                half = len(body) // 2
                for part in (body[:half], body[half:], b""):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            elif self.path == "/metrics":
                body = b"standin_up 1\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_error(404)

        def log_message(self, fmt, *a):
            sys.stderr.write("standin: " + (fmt % a) + "\n")

    server = socketserver.ThreadingUnixStreamServer(sock, Handler)
    print("standin: listening on %s" % sock)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
