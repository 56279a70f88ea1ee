#!/usr/bin/env bash

#SBATCH -J dask-worker
#SBATCH -e <TMP>/home/logs/slurm-plain/dask-worker-%J.err
#SBATCH -o <TMP>/home/logs/slurm-plain/dask-worker-%J.out
#SBATCH -p belle
#SBATCH -A b2cal
#SBATCH -n 1
#SBATCH --cpus-per-task=2
#SBATCH --mem=4G
#SBATCH -t 02:00:00
#SBATCH --qos=normal
source /cvmfs/belle.cern.ch/tools/b2setup release-08
<PYTHON> -m distributed.cli.dask_worker tls://<insert-scheduler-address-here>:8786 --name dummy-name --nthreads 2 --memory-limit 3.73GiB --nanny --death-timeout 120 --protocol tls:// --tls-ca-file <TMP>/home/.caf-hpc/tls/slurm-plain/ca.pem --tls-cert <TMP>/home/.caf-hpc/tls/slurm-plain/cert.pem --tls-key <TMP>/home/.caf-hpc/tls/slurm-plain/key.pem
