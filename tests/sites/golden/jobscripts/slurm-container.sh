#!/usr/bin/env bash

#SBATCH -J dask-worker
#SBATCH -e <TMP>/home/logs/slurm-container/dask-worker-%J.err
#SBATCH -o <TMP>/home/logs/slurm-container/dask-worker-%J.out
#SBATCH -p belle
#SBATCH -A b2cal
#SBATCH -n 1
#SBATCH --cpus-per-task=2
#SBATCH --mem=4G
#SBATCH -t 02:00:00
#SBATCH --qos=normal
source /cvmfs/belle.cern.ch/tools/b2setup release-08
apptainer exec --bind /cvmfs --bind /group/belle2:/belle2 --bind <TMP>/home/.caf-hpc/tls/slurm-container --bind <TMP>/home/logs/slurm-container --bind <TMP>/work --bind <TMP>/work/calibration_results --env OMP_NUM_THREADS=1 --cleanenv <TMP>/home/images/belle2.sif python -m distributed.cli.dask_worker tls://<insert-scheduler-address-here>:8786 --name dummy-name --nthreads 2 --memory-limit 3.73GiB --nanny --death-timeout 120 --protocol tls:// --tls-ca-file <TMP>/home/.caf-hpc/tls/slurm-container/ca.pem --tls-cert <TMP>/home/.caf-hpc/tls/slurm-container/cert.pem --tls-key <TMP>/home/.caf-hpc/tls/slurm-container/key.pem
