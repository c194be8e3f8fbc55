"""What the Host/Origin guard and the signed URLs cost a request: the same requests through the app with and
without the guard (server/guard.py), alternating in one process, as a ratio of medians.

    python bench/bench_guard.py [--requests 400] [--rounds 7]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from server.app import create_app, shutdown  # noqa: E402
from server.guard import AccessGuard  # noqa: E402

API = "/api/v1"
TOKEN = "a-token-for-the-guard-benchmark"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"root": tmp, "device": "cpu", "start_worker": False, "host": "0.0.0.0", "token": TOKEN})
        try:
            guarded = app.wsgi_app
            assert isinstance(guarded, AccessGuard)
            auth = {"Authorization": f"Bearer {TOKEN}", "Host": "localhost:9090", "Origin": "http://localhost:9090"}
            buffer = io.BytesIO()
            Image.new("RGB", (64, 64), "red").save(buffer, format="PNG")
            client = app.test_client()
            image = client.post(f"{API}/images", headers=auth, data={"file": (io.BytesIO(buffer.getvalue()), "x.png")},
                                content_type="multipart/form-data").json
            work = [
                ("GET health", lambda: client.get(f"{API}/health", headers=auth)),
                ("GET signed thumbnail", lambda: client.get(image["thumbnail_url"], headers={"Host": "localhost:9090"})),
                ("POST pause", lambda: client.post(f"{API}/queue/pause", headers=auth)),
            ]
            for name, call in work:
                with_guard, without = [], []
                for _ in range(args.rounds):
                    for target, times in ((guarded, with_guard), (guarded.app, without)):
                        app.wsgi_app = target
                        started = time.perf_counter()
                        for _ in range(args.requests):
                            assert call().status_code == 200
                        times.append((time.perf_counter() - started) / args.requests)
                app.wsgi_app = guarded
                a, b = statistics.median(with_guard), statistics.median(without)
                print(f"{name}: {a * 1e6:.0f} us with the guard, {b * 1e6:.0f} us without: {a / b:.3f}x")
        finally:
            shutdown(app)


if __name__ == "__main__":
    main()
