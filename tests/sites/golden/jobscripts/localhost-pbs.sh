#!/usr/bin/env bash

#PBS -N dask-worker
#PBS -q debug
#PBS -l select=1:ncpus=1:mpiprocs=1:mem=1024mb
#PBS -l walltime=00:30:00

<PYTHON> -m distributed.cli.dask_worker tls://<insert-scheduler-address-here>:8786 --name dummy-name --nthreads 1 --memory-limit 0.93GiB --nanny --death-timeout 60 --interface lo --protocol tls:// --tls-ca-file <TMP>/home/.caf-hpc/tls/localhost-pbs/ca.pem --tls-cert <TMP>/home/.caf-hpc/tls/localhost-pbs/cert.pem --tls-key <TMP>/home/.caf-hpc/tls/localhost-pbs/key.pem
