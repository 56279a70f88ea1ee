#!/usr/bin/env bash

#$ -N dask-worker
#$ -q long.q
#$ -P belle
#$ -l h_vmem=4G
#$ -l h_rt=02:00:00
#$ -e <TMP>/home/logs/sge-container/
#$ -o <TMP>/home/logs/sge-container/
#$ -cwd
#$ -j y
#$ -pe smp 2
source /cvmfs/belle.cern.ch/tools/b2setup release-08
podman run --rm --network host -v <TMP>/home/.caf-hpc/tls/sge-container:<TMP>/home/.caf-hpc/tls/sge-container -v <TMP>/home/logs/sge-container:<TMP>/home/logs/sge-container -v <TMP>/work:<TMP>/work -v <TMP>/work/calibration_results:<TMP>/work/calibration_results -e OMP_NUM_THREADS=1 -e SLURM_JOB_ID -e PBS_JOBID -e JOB_ID -e LSB_JOBID -e CONDOR_JOBID localhost/caf-hpc:latest python -m distributed.cli.dask_worker tls://<insert-scheduler-address-here>:8786 --name dummy-name --nthreads 2 --memory-limit 3.73GiB --nanny --death-timeout 120 --protocol tls:// --tls-ca-file <TMP>/home/.caf-hpc/tls/sge-container/ca.pem --tls-cert <TMP>/home/.caf-hpc/tls/sge-container/cert.pem --tls-key <TMP>/home/.caf-hpc/tls/sge-container/key.pem
