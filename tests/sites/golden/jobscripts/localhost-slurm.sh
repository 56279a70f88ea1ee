#!/usr/bin/env bash

#SBATCH -J dask-worker
#SBATCH -e <TMP>/home/.caf-hpc/logs/localhost-slurm/dask-worker-%J.err
#SBATCH -o <TMP>/home/.caf-hpc/logs/localhost-slurm/dask-worker-%J.out
#SBATCH -p debug
#SBATCH -n 1
#SBATCH --cpus-per-task=1
#SBATCH --mem=954M
#SBATCH -t 00:30:00

<PYTHON> -m distributed.cli.dask_worker tls://<insert-scheduler-address-here>:8786 --name dummy-name --nthreads 1 --memory-limit 0.93GiB --nanny --death-timeout 60 --interface lo --protocol tls:// --tls-ca-file <TMP>/home/.caf-hpc/tls/localhost-slurm/ca.pem --tls-cert <TMP>/home/.caf-hpc/tls/localhost-slurm/cert.pem --tls-key <TMP>/home/.caf-hpc/tls/localhost-slurm/key.pem
