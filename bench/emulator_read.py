"""Read throughput of the emulated Dataverse: page through a seeded table with 5,000-row pages.

Usage: python bench/emulator_read.py [--records 200000] [--table contacts] [--seed 1]
Prints records/s (limits off, no latency). Server (uvicorn thread) and client share one process.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import uvicorn

from crmsync_desktop.emulator.auth_protocol import Principal, StaticBearerAuthenticator
from crmsync_desktop.emulator.dataverse import DataverseOrg, ServiceLimits, create_app
from crmsync_desktop.emulator.seed import seed_sales_org

SELECT = {"contacts": "fullname,emailaddress1,telephone1,jobtitle,_parentcustomerid_value,statecode,modifiedon",
          "accounts": "name,accountnumber,revenue,industrycode,_ownerid_value,statecode,modifiedon"}


@contextlib.contextmanager
def serve(app: object) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # see stack-recipes §5
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    t = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    t.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        t.join(timeout=10)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--records", type=int, default=200000)
    p.add_argument("--table", default="contacts", choices=sorted(SELECT))
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        org = DataverseOrg.create(Path(d) / "bench.db", limits=ServiceLimits(enabled=False))
        t0 = time.perf_counter()
        seed_sales_org(org, records=args.records, seed=args.seed)
        print(f"seeded {args.records} records in {time.perf_counter() - t0:.1f} s")
        principal = Principal("00000000-0000-4000-8000-0000000000be", "t", "a", "Bench")
        auth = StaticBearerAuthenticator({"bench": principal}, "https://login.invalid/t/oauth2/authorize")
        with serve(create_app(org, auth)) as url, httpx.Client(timeout=120) as client:
            headers = {"Authorization": "Bearer bench", "Accept": "application/json", "OData-Version": "4.0",
                       "Prefer": "odata.maxpagesize=5000"}
            next_url: str | None = f"{url}/api/data/v9.2/{args.table}?$select={SELECT[args.table]}"
            rows = pages = 0
            t0 = time.perf_counter()
            while next_url:
                r = client.get(next_url, headers=headers)
                r.raise_for_status()
                body = r.json()
                rows += len(body["value"])
                pages += 1
                next_url = body.get("@odata.nextLink")
            elapsed = time.perf_counter() - t0
        org.close()
    print(f"read {rows} {args.table} in {pages} pages, {elapsed:.2f} s: {rows / elapsed:,.0f} records/s")


if __name__ == "__main__":
    main()
