"""``crmsync-emulator``: run the emulated organizations from a terminal and drive them.

``dataverse`` / ``resco`` / ``pair`` start servers and print URLs and the emulator's test
credentials (printing them is intended: they only open the local emulator), then run until
Ctrl-C. ``approve-device-code`` signs a user in for a pending device code; ``fault`` changes a
running Resco Cloud emulator's fault injection.
"""

from __future__ import annotations

import argparse
import json
import signal
import ssl
import sys
import threading
from pathlib import Path
from typing import Any

__all__ = ["main"]


def _default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("crmsync-emulator", appauthor=False))


def _fault_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Resco Cloud fault injection")
    group.add_argument(
        "--error-rate", type=float, help="share of requests answered with --error-status (0..1)"
    )
    group.add_argument("--error-status", type=int, help="status for injected errors (default 503)")
    group.add_argument("--drop-rate", type=float, help="share of requests whose connection is dropped (0..1)")
    group.add_argument("--latency-ms", type=int, help="added latency per request")
    group.add_argument("--latency-jitter-ms", type=int, help="extra random latency 0..N ms")
    group.add_argument("--throttle-burst", type=int, help="answer the next N requests with 429")
    group.add_argument("--retry-after", type=int, help="Retry-After seconds sent with 429/503")
    group.add_argument(
        "--offline",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="drop every request, as if the network were down",
    )
    group.add_argument("--fault-seed", type=int, dest="fault_seed", help="seed for repeatable random faults")


_FAULT_KEYS = (
    "error_rate",
    "error_status",
    "drop_rate",
    "latency_ms",
    "latency_jitter_ms",
    "throttle_burst",
    "retry_after",
    "offline",
)


def _faults_from(args: argparse.Namespace) -> dict[str, Any]:
    values = {k: getattr(args, k) for k in _FAULT_KEYS if getattr(args, k, None) is not None}
    if getattr(args, "fault_seed", None) is not None:
        values["seed"] = args.fault_seed
    return values


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crmsync-emulator", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("dataverse", "emulated Entra ID + Dataverse"),
        ("resco", "emulated Resco Cloud"),
        ("pair", "Entra ID + Dataverse + Resco Cloud"),
    ):
        run = sub.add_parser(name, help=f"run {text} until Ctrl-C")
        run.add_argument(
            "--port",
            type=int,
            default=0,
            help="port of the data service (dataverse/resco; pair: Dataverse) — 0 = any free port",
        )
        if name != "resco":
            run.add_argument("--identity-port", type=int, default=0, help="port of the sign-in service")
        if name == "pair":
            run.add_argument("--resco-port", type=int, default=0, help="port of Resco Cloud")
        run.add_argument(
            "--data-dir", type=Path, default=None, help="where organizations, keys and certificates live"
        )
        run.add_argument("--seed-records", type=int, default=0, help="seed the Dataverse org with N records")
        run.add_argument("--seed", type=int, default=0, help="random seed for seeding")
        run.add_argument("--resco-org", default="contoso", help="name of the Resco Cloud organization")
        run.add_argument("--token-lifetime", type=int, default=3600, help="access token lifetime in seconds")
        run.add_argument("--json", action="store_true", help="print the summary as one JSON line")
        if name != "dataverse":
            _fault_args(run)
    approve = sub.add_parser("approve-device-code", help="approve a pending device code sign-in")
    approve.add_argument("code", help="the user code shown by the signing-in app")
    approve.add_argument("--url", required=True, help="identity URL, e.g. https://127.0.0.1:PORT")
    approve.add_argument("--user", default=None, help="UPN to sign in (default: the tenant's first user)")
    approve.add_argument("--decline", action="store_true", help="decline instead of approving")
    _trust_args(approve)
    fault = sub.add_parser("fault", help="change fault injection of a running Resco Cloud emulator")
    fault.add_argument("--url", required=True, help="Resco Cloud URL, e.g. https://127.0.0.1:PORT")
    fault.add_argument("--reset", action="store_true", help="switch every fault off")
    _fault_args(fault)
    _trust_args(fault)
    return parser


def _trust_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ca", type=Path, default=None, help="emulator CA file (default: <data-dir>/tls/ca.pem)"
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="emulator data folder (to find the CA)")


def _client(args: argparse.Namespace) -> Any:
    import httpx

    ca = args.ca or (args.data_dir or _default_data_dir()) / "tls" / "ca.pem"
    return httpx.Client(verify=ssl.create_default_context(cafile=str(ca)), timeout=10.0)


def _run(args: argparse.Namespace) -> int:
    from crmsync_desktop.emulator import runner
    from crmsync_desktop.emulator.resco import FaultConfig

    faults = FaultConfig()
    faults.update(_faults_from(args))
    pair = runner.EmulatorPair(
        data_dir=args.data_dir or _default_data_dir(),
        seed_records=args.seed_records,
        seed=args.seed,
        with_dataverse=args.command != "resco",
        with_resco=args.command != "dataverse",
        identity_port=getattr(args, "identity_port", 0),
        dataverse_port=args.port if args.command != "resco" else 0,
        resco_port=args.port if args.command == "resco" else getattr(args, "resco_port", 0),
        resco_org=args.resco_org,
        resco_faults=faults,
        access_token_lifetime=args.token_lifetime,
        dataverse_factory=runner.default_dataverse_factory,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with pair:
        summary = pair.summary()
        if args.json:
            print(json.dumps(summary), flush=True)
        else:
            width = max(len(k) for k in summary)
            print("crmsync emulator running (emulator test credentials, local use only):")
            for key, value in summary.items():
                print(f"  {key.ljust(width)}  {value}")
            print("Press Ctrl-C to stop.", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    return 0


def _approve(args: argparse.Namespace) -> int:
    with _client(args) as client:
        response = client.post(
            f"{args.url.rstrip('/')}/_emulator/devicecode/approve",
            json={"user_code": args.code, "username": args.user, "decline": args.decline},
        )
    print(response.text)
    return 0 if response.status_code == 200 else 1


def _fault(args: argparse.Namespace) -> int:
    url = f"{args.url.rstrip('/')}/_emulator/faults"
    with _client(args) as client:
        if args.reset:
            response = client.delete(url)
        elif _faults_from(args):
            response = client.put(url, json=_faults_from(args))
        else:
            response = client.get(url)
    print(response.text)
    return 0 if response.status_code == 200 else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("dataverse", "resco", "pair"):
        return _run(args)
    if args.command == "approve-device-code":
        return _approve(args)
    return _fault(args)


if __name__ == "__main__":
    sys.exit(main())
