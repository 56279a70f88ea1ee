#!/usr/bin/env bash

#SBATCH -J dask-worker
#SBATCH -e <TMP>/home/.caf-hpc/logs/localhost-slurm-podman/dask-worker-%J.err
#SBATCH -o <TMP>/home/.caf-hpc/logs/localhost-slurm-podman/dask-worker-%J.out
#SBATCH -p debug
#SBATCH -n 1
#SBATCH --cpus-per-task=1
#SBATCH --mem=954M
#SBATCH -t 00:30:00

podman run --rm --network host -v <TMP>/home/.caf-hpc/tls/localhost-slurm-podman:<TMP>/home/.caf-hpc/tls/localhost-slurm-podman -v <TMP>/home/.caf-hpc/logs/localhost-slurm-podman:<TMP>/home/.caf-hpc/logs/localhost-slurm-podman -v <TMP>/work:<TMP>/work -e SLURM_JOB_ID -e PBS_JOBID -e JOB_ID -e LSB_JOBID -e CONDOR_JOBID --user $SLURM_JOB_UID:$SLURM_JOB_GID localhost/caf-hpc:testbed python -m distributed.cli.dask_worker tls://<insert-scheduler-address-here>:8786 --name dummy-name --nthreads 1 --memory-limit 0.93GiB --nanny --death-timeout 60 --interface lo --protocol tls:// --tls-ca-file <TMP>/home/.caf-hpc/tls/localhost-slurm-podman/ca.pem --tls-cert <TMP>/home/.caf-hpc/tls/localhost-slurm-podman/cert.pem --tls-key <TMP>/home/.caf-hpc/tls/localhost-slurm-podman/key.pem
