#!/usr/bin/env bash

#$ -N dask-worker
#$ -q long.q
#$ -P belle
#$ -l h_vmem=4G
#$ -l h_rt=02:00:00
#$ -e <TMP>/home/logs/sge-plain/
#$ -o <TMP>/home/logs/sge-plain/
#$ -cwd
#$ -j y
#$ -pe smp 2
source /cvmfs/belle.cern.ch/tools/b2setup release-08
<PYTHON> -m distributed.cli.dask_worker tls://<insert-scheduler-address-here>:8786 --name dummy-name --nthreads 2 --memory-limit 3.73GiB --nanny --death-timeout 120 --protocol tls:// --tls-ca-file <TMP>/home/.caf-hpc/tls/sge-plain/ca.pem --tls-cert <TMP>/home/.caf-hpc/tls/sge-plain/cert.pem --tls-key <TMP>/home/.caf-hpc/tls/sge-plain/key.pem
