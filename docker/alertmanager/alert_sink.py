"""A webhook receiver for Alertmanager that prints each notification (one JSON line).

Runs in compose's `alert-sink` container (plain python:3.11-slim, no dependencies):
`docker compose -f docker/compose.yaml logs -f alert-sink` shows the alerts.
"""

import json
from http.server import BaseHTTPRequestHandler, HTTPServer


class Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            notification = json.loads(body)
            for alert in notification.get("alerts", []):
                labels = alert.get("labels", {})
                summary = alert.get("annotations", {}).get("summary", "")
                line = {"status": alert.get("status"), **labels, "summary": summary}
                print(json.dumps(line), flush=True)
        except ValueError:
            print(body.decode(errors="replace"), flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:  # the alerts are the log
        return


if __name__ == "__main__":
    HTTPServer(("0.0.0.0", 8080), Sink).serve_forever()  # noqa: S104 (inside its container)
