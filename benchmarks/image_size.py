"""The worker image's size, and what takes it: ``python -m benchmarks.image_size`` (as root, the testbed's Podman up).

Builds the image from this checkout as the container test does (the testbed's Debian
base, a wheelhouse, ``caf_hpc.extras.testbed.image``) under a tag of its own, then
measures it with Podman: the image and its base (``podman image inspect``), the
environment ``/opt/caf-hpc`` and each package in it (``du`` in the image), its bytecode,
how long a worker's imports take in it (``import distributed, caf_hpc.worker.task``, as
the image's user, median of a few), and how long a build takes without and with the cache.
Writes ``worker-image.json`` and ``worker-image.md`` into ``--out`` (default
``benchmarks/results/<machine>/``), which docs/container.md cites.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from caf_hpc.extras import testbed
from caf_hpc.extras.testbed import image

from . import CHECKOUT, report

TAG = "localhost/caf-hpc:measured"
SITE_PACKAGES = "/opt/caf-hpc/lib/python3*/site-packages"
IMPORTS = "import distributed, caf_hpc.worker.task"


def _podman(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


def _in_image(script: str, user: str = "0") -> str:
    return _podman("run", "--rm", "--network", "host", "--user", user, TAG, "sh", "-c", script)


def _kib(line: str) -> tuple:
    size, path = line.split("\t", 1)
    return os.path.basename(path.strip()), int(size)


def measure(imports: int = 7) -> dict:
    with tempfile.TemporaryDirectory(prefix="caf-hpc-image-") as tmp:
        context = image.stage(CHECKOUT, Path(tmp) / "context")
        image.build(context, tag=TAG)  # the layers a rebuild of this context finds in the cache
        started = time.monotonic()  # as image.build, with no layer of an earlier build reused
        _podman("build", "--no-cache", "--build-arg", f"BASE_IMAGE={image.BASE}", "--build-arg",
                "WHEELHOUSE=.wheelhouse", "-t", TAG, "-f", str(context / "Containerfile"), str(context), timeout=600)
        cold = time.monotonic() - started
        cached, _ = image.build(context, tag=TAG)
    sizes = {tag: int(_podman("image", "inspect", "--format", "{{.Size}}", tag).strip()) for tag in (TAG, image.BASE)}
    environment = int(_in_image("du -sk /opt/caf-hpc").split()[0])
    packages = dict(_kib(line) for line in _in_image(f"du -sk {SITE_PACKAGES}/*").splitlines())
    bytecode = int(_in_image("find /opt/caf-hpc -name '*.pyc' -print0 | du -ck --files0-from=- | tail -1").split()[0])
    distributions = sorted(_in_image(f"ls -d {SITE_PACKAGES}/*.dist-info").split())
    timing = f'import time; t = time.perf_counter(); {IMPORTS}; print(time.perf_counter() - t)'
    runs = _in_image(f"for i in $(seq {imports}); do python -c '{timing}'; done", user="1000")
    seconds_import = [float(value) for value in runs.split()]
    versions = report.versions(batch=True)
    return {
        "command": "python -m benchmarks.image_size",
        "when": report.now().strftime("%Y-%m-%d %H:%M UTC"),
        "commit": versions["commit"],
        "podman": versions["podman"],
        "base": image.BASE,
        "build_seconds": {"no_cache": round(cold, 1), "cached": round(cached, 1)},
        "image_mb": round(sizes[TAG] / 1e6, 1),
        "base_mb": round(sizes[image.BASE] / 1e6, 1),
        "added_mb": round((sizes[TAG] - sizes[image.BASE]) / 1e6, 1),
        "environment_mb": round(environment * 1024 / 1e6, 1),
        "bytecode_mb": round(bytecode * 1024 / 1e6, 1),
        "distributions": [Path(name).name.removesuffix(".dist-info") for name in distributions],
        "largest_mb": {name: round(kib * 1024 / 1e6, 1)
                       for name, kib in sorted(packages.items(), key=lambda item: -item[1])
                       if not name.endswith(".dist-info")}
        if packages else {},
        "worker_imports": IMPORTS,
        "worker_imports_seconds": {"median": round(statistics.median(seconds_import), 3),
                                   "min": round(min(seconds_import), 3), "max": round(max(seconds_import), 3),
                                   "n": len(seconds_import)},
    }


def markdown(data: dict) -> str:
    largest = ", ".join(f"{name} {mb:g}" for name, mb in list(data["largest_mb"].items())[:10])
    timing = data["worker_imports_seconds"]
    return "\n".join([
        "# The worker image: size and what takes it",
        "",
        (f"Measured {data['when']} with `{data['command']}` (commit {data['commit']}, {data['podman']}), "
         f"on the base `{data['base']}` that `caf-hpc testbed up podman` makes."),
        "",
        "| | |",
        "|---|---|",
        f"| the image | {data['image_mb']:g} MB |",
        f"| its base | {data['base_mb']:g} MB |",
        f"| added by the Containerfile | {data['added_mb']:g} MB |",
        (f"| of which the environment /opt/caf-hpc | {data['environment_mb']:g} MB, "
         f"{data['bytecode_mb']:g} MB of it bytecode |"),
        f"| largest in it (MB) | {largest} |",
        (f"| `{data['worker_imports']}` as the image's user | {timing['median']:.2f} s "
         f"({timing['min']:.2f}–{timing['max']:.2f}, n = {timing['n']}) |"),
        f"| a build on the base, nothing cached (`--no-cache`) | {data['build_seconds']['no_cache']:g} s |",
        f"| the same build again, from the cache | {data['build_seconds']['cached']:g} s |",
        "",
        f"Distributions: {', '.join(data['distributions'])}.",
        "",
    ])


def main(argv: list) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.image_size", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results"
                        / report.machine()["label"])
    args = parser.parse_args(argv)
    if not testbed.is_up("podman"):
        print("the podman testbed is down: start it with `caf-hpc testbed up podman` (as root)", file=sys.stderr)
        return 2
    os.environ.update(testbed.environment("podman"))
    started = time.monotonic()
    data = measure()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "worker-image.json").write_text(json.dumps(data, indent=1) + "\n")
    (args.out / "worker-image.md").write_text(markdown(data))
    print(f"{data['image_mb']:g} MB ({data['added_mb']:g} MB on the base); written to {args.out} "
          f"in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
