"""The batch script a site would submit, built by dask-jobqueue's own job class without starting anything."""
from __future__ import annotations

from collections.abc import Sequence

from ..dask_adapter import render_job_script
from . import schema
from .build import cluster_arguments
from .config import SiteConfig
from .errors import SiteConfigError
from .security import security_for

#: What dask-jobqueue itself prints for the two values known only once the cluster runs.
WORKER_NAME = "dummy-name"
SCHEDULER_ADDRESS = "{protocol}://<insert-scheduler-address-here>:8786"


def job_script(site: SiteConfig, directories: Sequence[str] = ()) -> str:
    """The job script, container wrapping and TLS arguments included; only the scheduler address and worker name differ.

    Constructing the job class is what ``JobQueueCluster.job_script()`` does too, but
    without a scheduler, and without making ``log_directory`` (it only prints).
    """
    if not site.is_batch:
        raise SiteConfigError(f"{site.source}: scheduler {site.scheduler} submits no batch jobs, "
                              "so there is no job script")
    security = security_for(site.security["directory"], create=False) if site.tls else None
    cls, kwargs = cluster_arguments(site, security, directories)
    job_cls = kwargs.pop("job_cls", cls.job_cls)
    job_kwargs = {key: value for key, value in kwargs.items() if key not in schema.cluster_only_keys()}
    job_kwargs["protocol"] = "tls://" if security is not None else None  # as JobQueueCluster does
    job_kwargs["security"] = security
    address = SCHEDULER_ADDRESS.format(protocol="tls" if security is not None else "tcp")
    return render_job_script(job_cls, scheduler=address, name=WORKER_NAME, **job_kwargs)


def submit_command(site: SiteConfig) -> str:
    """The command the script is handed to (``sbatch``, ``qsub -o ... -e ...``, ...)."""
    if not site.is_batch:
        raise SiteConfigError(f"{site.source}: scheduler {site.scheduler} submits no batch jobs")
    cls, kwargs = cluster_arguments(site)
    job_cls = kwargs.get("job_cls", cls.job_cls)
    if site.scheduler_type.native_command_extras:  # dask-jobqueue adds them only when the cluster starts
        extra = kwargs.get("submit_command_extra") or []
        return " ".join([job_cls.submit_command, *extra])
    return job_cls.submit_command
