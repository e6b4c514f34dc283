"""SubmitJob through `barge aws-api` against direct creates of the same BatchJobs (as kubectl does),
in one run, on a cluster that is already up. The ratio goes into bench/results.json (`aws_api`).

usage: python -m barge.bench.aws_api [--jobs 200] [--concurrency 8] [--rounds 2] [--write]

Each round measures both sides with the same number of client threads, alternating which goes
first; the figures are the medians over rounds. Only the API server is exercised: no operator needs
to run (the jobs' queue is DISABLED so an operator that does run fails them at once)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import kubernetes
import requests
import yaml
from botocore.config import Config

from barge.core.states import GROUP, VERSION

RESULTS = Path(__file__).resolve().parent / "results.json"
DEFINITION = {"image": "busybox", "command": ["true"], "resourceRequirements": [{"type": "VCPU", "value": "1"}]}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rate(n: int, concurrency: int, submit: Callable[[int], Any]) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(submit, range(n)))
    return n / (time.perf_counter() - started)


class Bench:
    def __init__(self, kubeconfig: str, concurrency: int) -> None:
        self.kubeconfig = kubeconfig
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        configuration.connection_pool_maxsize = concurrency * 2
        self.api = kubernetes.client.ApiClient(configuration)
        self.custom = kubernetes.client.CustomObjectsApi(self.api)
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.name = f"bench-aws-{uuid.uuid4().hex[:6]}"
        self.concurrency = concurrency
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoint = ""

    def start(self, workdir: Path) -> None:
        self.core.create_namespace(kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=self.name)))
        credentials = workdir / "credentials.yaml"
        credentials.write_text(yaml.safe_dump([{"accessKeyId": "AKIDBENCH", "secretAccessKey": "bench",
                                                "username": "bench", "groups": ["system:masters"]}]))
        port = _free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "barge.cli.main", "aws-api", "--port", str(port), "--namespace", self.name,
             "--credentials", str(credentials)], env={**os.environ, "KUBECONFIG": self.kubeconfig},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.post(self.endpoint + "/v1/describejobqueues", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        batch = self.client()
        batch.create_compute_environment(computeEnvironmentName=self.name, type="UNMANAGED", state="DISABLED")
        batch.create_job_queue(jobQueueName=self.name, priority=1, state="DISABLED",
                               computeEnvironmentOrder=[{"order": 1, "computeEnvironment": self.name}])
        batch.register_job_definition(jobDefinitionName="bench", type="container", containerProperties=DEFINITION)

    def client(self) -> Any:
        return boto3.client("batch", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="AKIDBENCH", aws_secret_access_key="bench",
                            config=Config(max_pool_connections=self.concurrency * 2, retries={"max_attempts": 1}))

    def through_api(self, n: int) -> float:
        batch = self.client()
        return _rate(n, self.concurrency, lambda i: batch.submit_job(
            jobName=f"api-{i}", jobQueue=self.name, jobDefinition="bench"))

    def direct(self, n: int) -> float:
        def create(i: int) -> None:
            body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "BatchJob", "metadata": {"generateName": "direct-"},
                    "spec": {"jobDefinition": "bench-1", "jobQueue": self.name}}
            self.custom.create_namespaced_custom_object(GROUP, VERSION, self.name, "batchjobs", body)

        return _rate(n, self.concurrency, create)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
        self.core.delete_namespace(self.name)
        for plural in ("jobqueues", "computeenvironments"):
            with contextlib.suppress(kubernetes.client.ApiException):
                self.custom.delete_cluster_custom_object(GROUP, VERSION, plural, self.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m barge.bench.aws_api", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200, help="submissions per side per round")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads on each side")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="record the figures in bench/results.json")
    args = parser.parse_args(argv)
    kubeconfig = os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config"))
    bench = Bench(kubeconfig, args.concurrency)
    api: list[float] = []
    direct: list[float] = []
    with tempfile.TemporaryDirectory() as workdir:
        bench.start(Path(workdir))
        try:
            for round_ in range(args.rounds):
                sides = [(api, bench.through_api), (direct, bench.direct)]
                for rates, measure in sides if round_ % 2 == 0 else reversed(sides):
                    rates.append(measure(args.jobs))
        finally:
            bench.stop()
    result = {"submit_job_per_s": round(statistics.median(api), 1),
              "direct_create_per_s": round(statistics.median(direct), 1),
              "ratio": round(statistics.median(api) / statistics.median(direct), 3),
              "jobs_per_side_per_round": args.jobs, "rounds": args.rounds, "concurrency": args.concurrency,
              "date": time.strftime("%Y-%m-%d"),
              "command": f"python -m barge.bench.aws_api --jobs {args.jobs} --concurrency {args.concurrency} "
                         f"--rounds {args.rounds} --write"}
    print(json.dumps(result, indent=2))
    if args.write:
        results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
        results["aws_api"] = result
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
