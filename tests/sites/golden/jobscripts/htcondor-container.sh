#!/usr/bin/env condor_submit

MY.DaskWorkerName = "htcondor--$F(MY.JobId)--"
batch_name = dummy-name
RequestCpus = MY.DaskWorkerCores
RequestMemory = floor(MY.DaskWorkerMemory / 1048576)
RequestDisk = floor(MY.DaskWorkerDisk / 1024)
MY.JobId = "$(ClusterId).$(ProcId)"
MY.DaskWorkerCores = 2
MY.DaskWorkerMemory = 4000000000
MY.DaskWorkerDisk = 4000000000
LogDirectory = <TMP>/home/logs/htcondor-container
Output = $(LogDirectory)/worker-$F(MY.JobId).out
Error = $(LogDirectory)/worker-$F(MY.JobId).err
Log = $(LogDirectory)/worker-$(ClusterId).log
Stream_Output = True
Stream_Error = True
accounting_group = belle.cal

Arguments = "-c 'source /cvmfs/belle.cern.ch/tools/b2setup release-08; podman run --rm --network host -v <TMP>/home/.caf-hpc/tls/htcondor-container:<TMP>/home/.caf-hpc/tls/htcondor-container -v <TMP>/home/logs/htcondor-container:<TMP>/home/logs/htcondor-container -v <TMP>/work:<TMP>/work -v <TMP>/work/calibration_results:<TMP>/work/calibration_results -e SLURM_JOB_ID -e PBS_JOBID -e JOB_ID -e LSB_JOBID -e CONDOR_JOBID --user $UID localhost/caf-hpc:latest python -m distributed.cli.dask_worker tls://<insert-scheduler-address-here>:8786 --name dummy-name --nthreads 2 --memory-limit 3.73GiB --nanny --death-timeout 120 --protocol tls:// --tls-ca-file <TMP>/home/.caf-hpc/tls/htcondor-container/ca.pem --tls-cert <TMP>/home/.caf-hpc/tls/htcondor-container/cert.pem --tls-key <TMP>/home/.caf-hpc/tls/htcondor-container/key.pem'"
Executable = /bin/sh

Queue
