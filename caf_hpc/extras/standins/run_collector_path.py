"""CAF's ``run_collector_path.py`` without basf2: copied into each collector job's sandbox and run by
``basf2 run_collector_path.py --job-information job_info.json`` in the job's directory."""
from caf_hpc.extras.standins.collector import run_collectors

if __name__ == "__main__":
    run_collectors()
