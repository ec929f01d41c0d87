"""Start a local version of the distributed stack on 127.0.0.1, for trying it; Ctrl-C stops it all.

- PostgreSQL (pgserver, a real server from PyPI) in .stack/postgres, for `tune.storage`
- an MLflow tracking server with a database backend and artifact serving, for `tracking.uri`
- a Dask scheduler with 2 worker processes, for `tune.runner`

It prints the `--set` overrides that point the pipeline at the stack.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from flows.cli import UI_ENV


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default=".stack", help="where the servers keep their data (default .stack)")
    parser.add_argument("--mlflow-port", type=int, default=5001)
    parser.add_argument("--dask-port", type=int, default=8786)
    parser.add_argument("--dask-workers", type=int, default=2)
    args = parser.parse_args()
    home = Path(args.dir).resolve()
    home.mkdir(parents=True, exist_ok=True)

    import pgserver

    postgres = pgserver.get_server(home / "postgres", cleanup_mode="stop")
    scheduler = f"tcp://127.0.0.1:{args.dask_port}"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(args.mlflow_port),
                "--backend-store-uri",
                f"sqlite:///{home}/mlflow.db",
                "--artifacts-destination",
                str(home / "artifacts"),
            ],
            env=UI_ENV | dict(os.environ),
        ),
        subprocess.Popen(
            ["dask", "scheduler", "--host", "127.0.0.1", "--port", str(args.dask_port), "--dashboard-address", "127.0.0.1:8787"]
        ),
    ]
    time.sleep(3)
    procs.append(
        subprocess.Popen(
            [
                "dask",
                "worker",
                scheduler,
                "--host",
                "127.0.0.1",
                "--nworkers",
                str(args.dask_workers),
                "--nthreads",
                "1",
                "--dashboard-address",
                "127.0.0.1:0",
            ]
        )
    )
    print(
        "\nThe stack is up. Point the pipeline at it with:\n"
        f"  tunedag tune --set tune.storage='{postgres.get_uri()}' "
        f"--set tracking.uri=http://127.0.0.1:{args.mlflow_port} --set tune.runner.kind=dask --set tune.runner.address={scheduler}\n"
        "and add workers with `tunedag worker` and the same --set options. Ctrl-C stops the stack.\n",
        flush=True,
    )
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(30)
        postgres.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
