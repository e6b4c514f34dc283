"""Run e2e tests in parallel (pytest-xdist) against one operator started here, as an installed one
would be: most e2e tests wait on simulated pods, so several run at once on a 2-core machine.

    python -m tests.e2e.shared_operator [-n N] [pytest arguments...]

Tests that start, stop or kill the operator themselves (they ask for `process` or
`operator_process`) and the cluster lifecycle tests are left out of this pass
(BARGE_E2E_PASS=shared); `scripts/test` runs them afterwards, one at a time, with their own
operator (BARGE_E2E_PASS=own).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import METRICS_PORT, ROOT, OperatorProcess
from tests.e2e.kube import Cluster

OUTPUT = Path(os.environ.get("BARGE_E2E_OUTPUT", ROOT / ".test-output"))


def cluster() -> Cluster:
    given = os.environ.get("BARGE_E2E_KUBECONFIG")
    if given:
        return Cluster(Path(given), local=False)
    from barge.dev import cluster as local

    return Cluster(local.up(local.default_options()), local=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--workers", type=int, default=int(os.environ.get("BARGE_E2E_WORKERS", "3")))
    args, pytest_args = parser.parse_known_args(argv)
    target = cluster()
    target.kubectl("apply", "-f", str(ROOT / "crds"))
    OUTPUT.mkdir(parents=True, exist_ok=True)
    log = OUTPUT / "operator-shared.log"
    log.write_text("")
    operator = OperatorProcess(target, log)
    operator.start()
    env = {**os.environ, "BARGE_E2E_OPERATOR": "external", "BARGE_E2E_PASS": "shared",
           "BARGE_E2E_METRICS_URL": f"http://127.0.0.1:{METRICS_PORT}/metrics", "BARGE_E2E_KEEP_CLUSTER": "1"}
    try:
        code = subprocess.call([sys.executable, "-m", "pytest", "-n", str(args.workers), "--dist", "loadfile",
                                *pytest_args], env=env)
    finally:
        operator.stop()
    if code not in (0, 5):
        tail = log.read_text(errors="replace").splitlines()[-60:]
        print(f"\n--- shared operator log tail ({log}) ---\n" + "\n".join(tail))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
