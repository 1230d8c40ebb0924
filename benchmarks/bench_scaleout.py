"""Scale-out benchmark: the demo cohort with 1 and 2 Dask workers.

What it measures, for each worker count ``w`` (a fresh output folder each, so
nothing is cached):

* wall time of the whole ``pathxai.pipeline.run`` and of its per-slide stage
  (segmentation + features + QC, the part that runs on the workers), in seconds,
  after the workers have started and imported pathxai (reported separately);
* the speed-up ``t_slides(1) / t_slides(w)`` and the mean number of busy workers
  (seconds spent in slide tasks / slide-stage wall time);
* the peak resident memory of every worker process (MiB, ``getrusage`` inside the
  worker, read back with ``Client.run``) and of the driver;
* that every worker count gives byte-identical ``slide_features.csv`` and
  ``patient_features.csv``.

Run from the repository root::

    python benchmarks/bench_scaleout.py --out bench_out --workers 1 2
    python benchmarks/bench_scaleout.py --model stain --patients 12 --slide-size 768  # quick

On a machine whose cores are shared with other jobs the ratio is a lower bound.
Results are printed and written to ``<out>/bench_scaleout.json``.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shutil
import sys
import time
from pathlib import Path

from pathxai.pipeline.executors import limit_threads, peak_rss_mb, usable_cpus


def _warm_up() -> None:
    """Import the per-slide code in a worker, so the timed run measures slides only."""
    import pathxai.pipeline.stages  # noqa: F401


def run_once(manifest: Path, out: Path, n_workers: int, model: str, n_bootstrap: int,
             threads: int | None = None) -> dict:
    """One uncached pipeline run on a fresh ``LocalCluster`` of ``n_workers`` processes,
    each limited to ``threads`` BLAS/PyTorch threads (default: the CPUs shared out)."""
    from distributed import Client, LocalCluster

    from pathxai.pipeline.run import run

    if out.exists():
        shutil.rmtree(out)
    threads = threads or max(1, usable_cpus() // n_workers)
    t0 = time.perf_counter()
    cluster = LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    client = Client(cluster)
    client.run(limit_threads, threads)
    client.run(_warm_up)
    t_cluster = time.perf_counter() - t0
    try:
        t1 = time.perf_counter()
        result = run(
            manifest, out, model=model, executor="dask", scheduler=cluster.scheduler_address,
            stats_params={"n_bootstrap": n_bootstrap}, progress=False,
        )
        wall = time.perf_counter() - t1
        worker_peaks = client.run(peak_rss_mb)  # {address: MiB}
    finally:
        client.close()
        cluster.close()
    # seconds the workers spent inside slide tasks / wall time of the slide stage: how many
    # workers were busy on average (≈ n_workers when the scheduler keeps them all fed; the
    # speed-up also needs that many free cores)
    task_s = sum(
        sum(json.loads(done.read_text()).get("seconds", {}).values())
        for done in out.glob("slides/*/DONE.json")
    )
    slides_s = float(result.timings.get("slides", float("nan")))
    return {
        "n_workers": n_workers,
        "task_seconds_total": round(task_s, 2),
        "mean_busy_workers": round(task_s / slides_s, 2),
        "threads_per_worker_process": threads,
        "cluster_start_and_warm_up_s": round(t_cluster, 2),
        "wall_s": round(wall, 2),
        "slides_s": round(slides_s, 2),
        "stage_timings_s": {k: round(float(v), 2) for k, v in result.timings.items()},
        "slides_computed": result.counts["slides"]["computed"],
        "slides_failed": result.counts["slides"]["failed"],
        "worker_peak_rss_mb": sorted(round(v, 1) for v in worker_peaks.values() if v),
        "out": str(out),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench_out", help="working folder (default bench_out)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="worker counts to compare (default 1 2)")
    parser.add_argument("--patients", type=int, default=None,
                        help="synthetic patients (default: the demo's)")
    parser.add_argument("--slide-size", type=int, default=None, metavar="PX",
                        help="square slide side in pixels (default: the demo's)")
    parser.add_argument("--model", default="default",
                        help="segmentation model: 'default' or 'stain' (default 'default')")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS/PyTorch threads per worker (default: CPUs / workers); "
                             "1 compares process parallelism alone")
    parser.add_argument("--n-bootstrap", type=int, default=20,
                        help="bootstrap resamples in the statistics (default 20)")
    args = parser.parse_args(argv)

    out = Path(args.out).resolve()
    t0 = time.perf_counter()
    if args.slide_size is None:
        from pathxai.pipeline.cli import prepare_demo_cohort

        manifest = prepare_demo_cohort(out / "cohort", n_patients=args.patients, seed=0)
    else:
        from pathxai.datasets import make_synthetic_cohort

        kwargs = {} if args.patients is None else {"n_patients": args.patients}
        manifest = make_synthetic_cohort(
            out / f"cohort_{args.slide_size}px", seed=0,
            slide_size=(args.slide_size, args.slide_size), overwrite=True, **kwargs,
        )
    t_cohort = time.perf_counter() - t0
    rows = [
        run_once(manifest, out / f"run_w{w}", w, args.model, args.n_bootstrap, args.threads)
        for w in args.workers
    ]
    base = rows[0]
    for row in rows:
        row["speedup_slides_vs_first"] = round(base["slides_s"] / row["slides_s"], 2)
        row["speedup_wall_vs_first"] = round(base["wall_s"] / row["wall_s"], 2)
        row["tables_identical_to_first"] = all(
            filecmp.cmp(Path(base["out"]) / name, Path(row["out"]) / name, shallow=False)
            for name in ("slide_features.csv", "patient_features.csv")
        )
    report = {
        "cpus": usable_cpus(),
        "python": sys.version.split()[0],
        "model": args.model,
        "cohort_manifest": str(manifest),
        "cohort_generation_s": round(t_cohort, 2),
        "driver_peak_rss_mb": round(peak_rss_mb() or float("nan"), 1),
        "runs": rows,
    }
    (out / "bench_scaleout.json").write_text(json.dumps(report, indent=2) + "\n")

    print(f"demo cohort: {manifest} ({usable_cpus()} CPUs, model {args.model!r}, "
          f"threads per worker {[r['threads_per_worker_process'] for r in rows]})")
    print(f"{'workers':>7} {'wall s':>8} {'slides s':>9} {'speed-up':>9} {'busy':>5} "
          f"{'peak MiB per worker':>22} {'same tables':>12}")
    for r in rows:
        peaks = ", ".join(f"{v:.0f}" for v in r["worker_peak_rss_mb"])
        print(f"{r['n_workers']:>7} {r['wall_s']:>8.1f} {r['slides_s']:>9.1f} "
              f"{r['speedup_slides_vs_first']:>9.2f} {r['mean_busy_workers']:>5.2f} "
              f"{peaks:>22} {str(r['tables_identical_to_first']):>12}")
    print(f"driver peak RSS: {report['driver_peak_rss_mb']} MiB; "
          f"results in {out / 'bench_scaleout.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
