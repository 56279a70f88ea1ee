#!/usr/bin/env bash

#$ -N dask-worker
#$ -q all.q
#$ -l h_rt=00:30:00
#$ -e <TMP>/home/.caf-hpc/logs/localhost-sge/
#$ -o <TMP>/home/.caf-hpc/logs/localhost-sge/
#$ -cwd
#$ -j y
#$ -pe smp 1

<PYTHON> -m distributed.cli.dask_worker tls://<insert-scheduler-address-here>:8786 --name dummy-name --nthreads 1 --memory-limit 0.93GiB --nanny --death-timeout 60 --interface lo --protocol tls:// --tls-ca-file <TMP>/home/.caf-hpc/tls/localhost-sge/ca.pem --tls-cert <TMP>/home/.caf-hpc/tls/localhost-sge/cert.pem --tls-key <TMP>/home/.caf-hpc/tls/localhost-sge/key.pem
