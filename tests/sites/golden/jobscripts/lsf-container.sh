#!/usr/bin/env bash

#BSUB -J dask-worker
#BSUB -e <TMP>/home/logs/lsf-container/dummy-name-%J.err
#BSUB -o <TMP>/home/logs/lsf-container/dummy-name-%J.out
#BSUB -q l
#BSUB -P "belle"
#BSUB -n 2
#BSUB -R "span[hosts=1]"
#BSUB -M 4000
#BSUB -W 02:00
source /cvmfs/belle.cern.ch/tools/b2setup release-08
apptainer exec --bind <TMP>/home/.caf-hpc/tls/lsf-container --bind <TMP>/home/logs/lsf-container --bind <TMP>/work --bind <TMP>/work/calibration_results docker://belle2/externals:v2 python -m distributed.cli.dask_worker tls://<insert-scheduler-address-here>:8786 --name dummy-name --nthreads 2 --memory-limit 3.73GiB --nanny --death-timeout 120 --protocol tls:// --tls-ca-file <TMP>/home/.caf-hpc/tls/lsf-container/ca.pem --tls-cert <TMP>/home/.caf-hpc/tls/lsf-container/cert.pem --tls-key <TMP>/home/.caf-hpc/tls/lsf-container/key.pem
