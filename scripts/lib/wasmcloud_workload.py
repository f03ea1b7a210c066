#!/usr/bin/env python3
"""Starts, checks and stops a workload on one wasmCloud 2 host, over the host's NATS API
(scripts/lattice uses it; wasmCloud has no operator without Kubernetes). Needs nats-py 2.16.0
(scripts/install-wasmcloud installs it).

  wasmcloud_workload.py start  HOST_ID NAME IMAGE ROUTE [--env K=V]... [--loopback-port P]...
  wasmcloud_workload.py status HOST_ID NAME
  wasmcloud_workload.py stop   HOST_ID NAME

The subjects are runtime.host.<HOST_ID>.workload.{start,status,stop} (request and reply), with
proto3 JSON bodies. `start` serves the component's wasi:http incoming-handler for requests whose
Host header is ROUTE, with the environment given, and lets it reach the machine's loopback
ports named (as host.wasmcloud.internal:P; the host needs --allow-host-loopback too). It exits
0 once the host reports the workload running, 1 with the host's answer otherwise.
$NATS_URL names the NATS server (default nats://127.0.0.1:4222).
"""

import argparse
import asyncio
import json
import os
import sys

try:
    import nats
except ImportError:
    sys.exit("wasmcloud_workload.py: nats-py is missing; run scripts/install-wasmcloud")

RUNNING = "WORKLOAD_STATE_RUNNING"


def start_request(name, image, route, environment, loopback_ports):
    component = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IMAGE_PULL_POLICY_IF_NOT_PRESENT",
        "localResources": {"environment": environment, "allowedHostLoopbackPorts": loopback_ports},
    }
    http = {
        "namespace": "wasi",
        "package": "http",
        "version": "0.2.0",
        "interfaces": ["incoming-handler"],
        "config": {"host": route},
    }
    workload = {"namespace": "default", "name": name, "annotations": {}, "witWorld": {"components": [component], "hostInterfaces": [http]}}
    return {"workloadId": name, "workload": workload}


def environment_pair(text):
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--env wants NAME=VALUE, not {text!r}")
    return name, value


def parse(argv):
    parser = argparse.ArgumentParser(prog="wasmcloud_workload.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start a workload and wait until it runs")
    for command in (start, commands.add_parser("status"), commands.add_parser("stop")):
        command.add_argument("host_id")
        command.add_argument("name", help="the workload's id and name")
    start.add_argument("image", help="the component's OCI reference, e.g. 127.0.0.1:5000/leashed/items:latest")
    start.add_argument("route", help="the Host header that routes HTTP requests to it")
    start.add_argument("--env", type=environment_pair, action="append", default=[], metavar="NAME=VALUE")
    start.add_argument("--loopback-port", action="append", default=[], metavar="PORT")
    start.add_argument("--timeout", type=float, default=120, help="seconds to wait for the pull and compile")
    return parser.parse_args(argv)


async def run(args):
    url = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
    try:
        client = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0)
    except Exception as e:
        print(f"wasmcloud_workload.py: cannot reach NATS at {url}: {e}", file=sys.stderr)
        return 1
    subject = f"runtime.host.{args.host_id}.workload.{args.command}"
    if args.command == "start":
        body = start_request(args.name, args.image, args.route, dict(args.env), args.loopback_port)
        timeout = args.timeout
    else:
        body, timeout = {"workloadId": args.name}, 30
    try:
        reply = await client.request(subject, json.dumps(body).encode(), timeout=timeout)
    except Exception as e:
        print(f"wasmcloud_workload.py: {subject}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        await client.close()
    answer = json.loads(reply.data)
    print(json.dumps(answer))
    if args.command == "start" and answer.get("workloadStatus", {}).get("workloadState") != RUNNING:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(run(parse(sys.argv[1:]))))
