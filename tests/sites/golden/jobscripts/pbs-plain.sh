#!/usr/bin/env bash

#PBS -N dask-worker
#PBS -q workq
#PBS -A b2cal
#PBS -l select=1:ncpus=2:mpiprocs=1:mem=4gb
#PBS -l walltime=02:00:00
#PBS -e <TMP>/home/logs/pbs-plain/
#PBS -o <TMP>/home/logs/pbs-plain/
source /cvmfs/belle.cern.ch/tools/b2setup release-08
<PYTHON> -m distributed.cli.dask_worker tls://<insert-scheduler-address-here>:8786 --name dummy-name --nthreads 2 --memory-limit 3.73GiB --nanny --death-timeout 120 --protocol tls:// --tls-ca-file <TMP>/home/.caf-hpc/tls/pbs-plain/ca.pem --tls-cert <TMP>/home/.caf-hpc/tls/pbs-plain/cert.pem --tls-key <TMP>/home/.caf-hpc/tls/pbs-plain/key.pem
