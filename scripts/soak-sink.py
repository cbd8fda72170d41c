"""The soak run's webhook receiver (scripts/soak.sh): answers 200 to every POST and
appends one JSON line per request (time, notification id, group status, alert count) to
the file named by its second argument. Usage: soak-sink.py PORT LOG"""

import http.server
import json
import sys
import time


class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        payload = json.loads(body)
        line = {
            "t": time.time(),
            "id": self.headers.get("webhook-id"),
            "status": payload.get("status"),
            "alerts": len(payload.get("alerts", [])),
            "firing": sum(a.get("status") == "firing" for a in payload.get("alerts", [])),
            "resolved": sum(a.get("status") == "resolved" for a in payload.get("alerts", [])),
        }
        with open(sys.argv[2], "a") as log:
            log.write(json.dumps(line) + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
